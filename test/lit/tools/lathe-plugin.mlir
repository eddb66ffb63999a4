// LathePlugin.so (tools/lathe-plugin) in upstream mlir-opt-22: the dialect
// plugin lets mlir-opt parse tfm IR, the pass plugin registers Lathe's
// passes. Passes are named in --pass-pipeline: mlir-opt parses pass flags
// (--lathe-quantize) before it loads plugins. The pipeline packs the linear's
// weight into BFP4 and lowers the model to the plan, as in lathe-opt.

// RUN: %mlir_opt %s --load-dialect-plugin=%lathe_plugin --load-pass-plugin=%lathe_plugin \
// RUN:   --pass-pipeline="builtin.module(lathe-quantize{format=bfp4:block=32}, lathe-lower-to-plan)" \
// RUN:   > %t.mlir-opt
// RUN: FileCheck %s < %t.mlir-opt
// RUN: FileCheck %s --check-prefix=LOWERED < %t.mlir-opt
// RUN: lathe-opt %s --pass-pipeline="builtin.module(lathe-quantize{format=bfp4:block=32}, lathe-lower-to-plan)" > %t.lathe-opt
// RUN: diff %t.mlir-opt %t.lathe-opt

// The dialect plugin alone registers the passes too.
// RUN: %mlir_opt %s --load-dialect-plugin=%lathe_plugin --pass-pipeline="builtin.module(lathe-lower-to-plan)" \
// RUN:   > %t.dialect-only
// RUN: FileCheck %s --check-prefix=LOWER < %t.dialect-only
// RUN: FileCheck %s --check-prefix=LOWERED < %t.dialect-only

// Without the plugin, mlir-opt knows neither the dialect nor the passes.
// RUN: not %mlir_opt %s 2>&1 | FileCheck %s --check-prefix=NODIALECT
// RUN: echo "" | not %mlir_opt --pass-pipeline="builtin.module(lathe-lower-to-plan)" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=NOPASS

// CHECK-LABEL: func.func @forward
// CHECK-SAME: -> !plan.buffer<16, f32>
// CHECK: %[[E:.*]] = tfm.weight "emb" {value = dense<5.000000e-01> : tensor<16x64xf32>} : tensor<16x64xf32>
// CHECK: %[[W:.*]] = tfm.weight "w" {tfm.quant_error = {{.*}}, value = dense_resource<w> : tensor<2176xi8>} : tensor<64x64x!tfm.bfp<mantissa = 4, block = 32>>
// CHECK: plan.embedding %[[E]][%arg0] -> %[[X:[0-9]+]]
// CHECK: plan.matmul %[[X]], %[[W]] -> %[[Y:[0-9]+]] : <64, f32>, tensor<64x64x!tfm.bfp<mantissa = 4, block = 32>>, <64, f32>
// CHECK: plan.logits %[[Y]], %[[E]] -> %[[L:[0-9]+]]
// CHECK-NEXT: return %[[L]] : !plan.buffer<16, f32>
// LOWERED-NOT: tfm.linear

// LOWER: plan.matmul %{{[0-9]+}}, %{{[0-9]+}} -> %{{[0-9]+}} : <64, f32>, tensor<64x64xf32>, <64, f32>

// NODIALECT: error: `!"tfm"<"kv_cache<{{.*}}>">` type created with unregistered dialect
// NOPASS: error: 'lathe-lower-to-plan' does not refer to a registered pass or pass pipeline

func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>,
                   %c: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>) -> tensor<?x16xf32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x64xf32>} : tensor<16x64xf32>
  %w = tfm.weight "w" {value = dense<0.25> : tensor<64x64xf32>} : tensor<64x64xf32>
  %x = tfm.embedding %e[%t] : tensor<16x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %y = tfm.linear %x, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %l = tfm.logits %y, %e : tensor<?x64xf32>, tensor<16x64xf32> -> tensor<?x16xf32>
  return %l : tensor<?x16xf32>
}
