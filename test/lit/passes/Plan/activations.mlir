// RUN: lathe-opt %s --split-input-file --lathe-plan-activations | FileCheck %s --check-prefix=INT8
// RUN: lathe-opt %s --split-input-file --lathe-plan-activations="precision=float" | FileCheck %s --check-prefix=FLOAT
// RUN: not lathe-opt %s --split-input-file --lathe-plan-activations="precision=int4" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: lathe-opt %s --split-input-file --lathe-plan-activations="fallback=bf16" | FileCheck %s --check-prefix=FALLBACK
// RUN: lathe-opt %s --split-input-file --lathe-plan-activations="precision=bf16" | FileCheck %s --check-prefix=BF16
// RUN: not lathe-opt %s --split-input-file --lathe-plan-activations="fallback=int8" 2>&1 | FileCheck %s --check-prefix=BADFALLBACK

// int8 where every weight has integer codes (INT, BFP8/BFP4, MXINT8,
// MXFP4); float for float weights and for formats without integer codes
// (FP6, MXFP6, MXFP8, BFP6), or bf16 with fallback=bf16 (a group of
// products takes int8 only if all its weights can); float everywhere with
// precision=float, bf16 everywhere with precision=bf16.

// INT8-LABEL: func @products
// INT8: plan.matmul %{{.*}}, %[[I4:.*]] -> %{{.*}} {activations = #plan.activations<int8>}
// Float is the default and is not printed.
// INT8-NEXT: plan.matmul %{{.*}}, %{{.*}} -> %{{.*}} : <32, f32>, tensor<32x32x!tfm.mx<fp6_e3m2>>
// INT8-NEXT: plan.matmul %{{.*}}, %{{.*}} -> %{{.*}} : <32, f32>, tensor<32x32xf32>
// INT8-NEXT: plan.matmuls %{{.*}}, [%{{.*}}, %{{.*}}] -> [%{{.*}}, %{{.*}}] : <32, f32>
// INT8-NEXT: plan.logits {{.*}} {activations = #plan.activations<int8>}
// FLOAT-LABEL: func @products
// FLOAT-NOT: activations<int8>
// BAD: error: lathe-plan-activations: precision must be int8, bf16 or float, got 'int4'
// FALLBACK-LABEL: func @products
// FALLBACK: plan.matmul {{.*}} {activations = #plan.activations<int8>} : <32, f32>, tensor<32x32x!tfm.int
// FALLBACK-NEXT: plan.matmul {{.*}} {activations = #plan.activations<bf16>} : <32, f32>, tensor<32x32x!tfm.mx<fp6_e3m2>>
// FALLBACK-NEXT: plan.matmul {{.*}} {activations = #plan.activations<bf16>} : <32, f32>, tensor<32x32xf32>
// FALLBACK-NEXT: plan.matmuls {{.*}} {activations = #plan.activations<bf16>}
// FALLBACK-NEXT: plan.logits {{.*}} {activations = #plan.activations<int8>}
// BF16-LABEL: func @products
// BF16-COUNT-3: plan.matmul {{.*}} {activations = #plan.activations<bf16>}
// BF16-NEXT: plan.matmuls {{.*}} {activations = #plan.activations<bf16>}
// BF16-NEXT: plan.logits {{.*}} {activations = #plan.activations<bf16>}
// BADFALLBACK: error: lathe-plan-activations: fallback must be float or bf16, got 'int8'
func.func @products(%x: !plan.buffer<32, f32>, %y: !plan.buffer<32, f32>, %z: !plan.buffer<32, f32>) {
  %i4 = tfm.weight "i4" {value = dense<0> : tensor<512xi8>} : tensor<32x32x!tfm.int<bits = 4, group = 32, symmetric = true>>
  %f6 = tfm.weight "f6" {value = dense<0> : tensor<800xi8>} : tensor<32x32x!tfm.mx<fp6_e3m2>>
  %f = tfm.weight "f" {value = dense<0.5> : tensor<32x32xf32>} : tensor<32x32xf32>
  %b8 = tfm.weight "b8" {value = dense<0> : tensor<1056xi8>} : tensor<32x32x!tfm.bfp<mantissa = 8, block = 32>>
  plan.matmul %x, %i4 -> %y : !plan.buffer<32, f32>, tensor<32x32x!tfm.int<bits = 4, group = 32, symmetric = true>>, !plan.buffer<32, f32>
  plan.matmul %x, %f6 -> %y : !plan.buffer<32, f32>, tensor<32x32x!tfm.mx<fp6_e3m2>>, !plan.buffer<32, f32>
  plan.matmul %x, %f -> %y : !plan.buffer<32, f32>, tensor<32x32xf32>, !plan.buffer<32, f32>
  plan.matmuls %x, [%i4, %f] -> [%y, %z] : !plan.buffer<32, f32>, [tensor<32x32x!tfm.int<bits = 4, group = 32, symmetric = true>>, tensor<32x32xf32>], [!plan.buffer<32, f32>, !plan.buffer<32, f32>]
  plan.logits %x, %b8 -> %y : !plan.buffer<32, f32>, tensor<32x32x!tfm.bfp<mantissa = 8, block = 32>>, !plan.buffer<32, f32>
  return
}

// -----

// max-int8-width=W: products of inputs wider than W take the fallback (the
// cuda target holds an int8 input row in shared memory); W = 0 takes any.
// RUN: lathe-opt %s --split-input-file --lathe-plan-activations="max-int8-width=32 fallback=bf16" | FileCheck %s --check-prefix=WIDEBF16
// max-bf16-width=W: products of inputs wider than W that would take bf16
// keep float.
// RUN: lathe-opt %s --split-input-file --lathe-plan-activations="precision=bf16 max-bf16-width=32" | FileCheck %s --check-prefix=BF16WIDTH
// RUN: not lathe-opt %s --split-input-file --lathe-plan-activations="max-bf16-width=-2" 2>&1 | FileCheck %s --check-prefix=NEGBF16
// RUN: lathe-opt %s --split-input-file --lathe-plan-activations="max-int8-width=32" | FileCheck %s --check-prefix=WIDE
// RUN: not lathe-opt %s --split-input-file --lathe-plan-activations="max-int8-width=-1" 2>&1 | FileCheck %s --check-prefix=NEG
// WIDE-LABEL: func @widths
// WIDE: plan.matmul %{{.*}}, %{{.*}} -> %{{.*}} {activations = #plan.activations<int8>} : <32, f32>, tensor<32x32x
// WIDE-NEXT: plan.matmul %{{.*}}, %{{.*}} -> %{{.*}} : <64, f32>, tensor<32x64x
// INT8-LABEL: func @widths
// INT8: plan.matmul {{.*}} {activations = #plan.activations<int8>} : <32, f32>
// INT8-NEXT: plan.matmul {{.*}} {activations = #plan.activations<int8>} : <64, f32>
// WIDEBF16-LABEL: func @widths
// WIDEBF16: plan.matmul {{.*}} {activations = #plan.activations<int8>} : <32, f32>
// WIDEBF16-NEXT: plan.matmul {{.*}} {activations = #plan.activations<bf16>} : <64, f32>
// BF16WIDTH-LABEL: func @widths
// BF16WIDTH: plan.matmul {{.*}} {activations = #plan.activations<bf16>} : <32, f32>
// BF16WIDTH-NEXT: plan.matmul %{{.*}}, %{{.*}} -> %{{.*}} : <64, f32>
// NEGBF16: error: lathe-plan-activations: max-bf16-width must be 0 (any) or positive, got -2
// NEG: error: lathe-plan-activations: max-int8-width must be 0 (any) or positive, got -1
func.func @widths(%x: !plan.buffer<32, f32>, %w: !plan.buffer<64, f32>, %y: !plan.buffer<32, f32>) {
  %a = tfm.weight "a" {value = dense<0> : tensor<512xi8>} : tensor<32x32x!tfm.int<bits = 4, group = 32, symmetric = true>>
  %b = tfm.weight "b" {value = dense<0> : tensor<1024xi8>} : tensor<32x64x!tfm.int<bits = 4, group = 32, symmetric = true>>
  plan.matmul %x, %a -> %y : !plan.buffer<32, f32>, tensor<32x32x!tfm.int<bits = 4, group = 32, symmetric = true>>, !plan.buffer<32, f32>
  plan.matmul %w, %b -> %y : !plan.buffer<64, f32>, tensor<32x64x!tfm.int<bits = 4, group = 32, symmetric = true>>, !plan.buffer<32, f32>
  return
}

// -----

// Attention's queries take the precision of the products that cannot take
// int8: float by default, bf16 with precision=bf16 or fallback=bf16.
// INT8-LABEL: func @attention
// INT8: plan.attention {{.*}} {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} :
// FLOAT-LABEL: func @attention
// FLOAT-NOT: activations<bf16>
// FALLBACK-LABEL: func @attention
// FALLBACK: plan.attention {{.*}} {activations = #plan.activations<bf16>,
// BF16-LABEL: func @attention
// BF16: plan.attention {{.*}} {activations = #plan.activations<bf16>,
func.func @attention(%q: !plan.buffer<8, f32>, %k: !plan.buffer<8, f32>, %o: !plan.buffer<8, f32>, %p: tensor<?xi32>,
                     %kv: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>) {
  plan.attention %q, %k, %k, %p, %kv -> %o {layer = 0 : i64, heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64} : !plan.buffer<8, f32>, !plan.buffer<8, f32>, !plan.buffer<8, f32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>, !plan.buffer<8, f32>
  return
}
