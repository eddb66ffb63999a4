// RUN: lathe-opt %s | FileCheck %s
// RUN: lathe-opt %s | lathe-opt | FileCheck %s
// RUN: lathe-opt %s --mlir-print-op-generic | lathe-opt | FileCheck %s

// One decoder layer in the shape the importers produce (width 8, 2 heads of
// 4, 1 KV head, FFN 16), round-tripped through the printer and parser.

// CHECK-LABEL: func @layer
func.func @layer(%tokens: tensor<?xi32>, %pos: tensor<?xi32>,
                 %cache: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, f32>)
    -> tensor<?x10xf32> {
  // CHECK: tfm.weight "embedding" {{.*}} : tensor<10x8xbf16>
  %emb = tfm.weight "embedding" {value = dense<0.5> : tensor<10x8xbf16>} : tensor<10x8xbf16>
  %g = tfm.weight "attn_norm" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  %wq = tfm.weight "wq" {value = dense<0.1> : tensor<8x8xf32>} : tensor<8x8xf32>
  %wk = tfm.weight "wk" {value = dense<0.1> : tensor<4x8xf16>} : tensor<4x8xf16>
  %wv = tfm.weight "wv" {value = dense<0.1> : tensor<4x8xf32>} : tensor<4x8xf32>
  %w1 = tfm.weight "w1" {value = dense<0.1> : tensor<16x8xf32>} : tensor<16x8xf32>
  // CHECK: tfm.embedding %{{.*}}[%{{.*}}] : tensor<10x8xbf16>, tensor<?xi32> -> tensor<?x8xf32>
  %x = tfm.embedding %emb[%tokens] : tensor<10x8xbf16>, tensor<?xi32> -> tensor<?x8xf32>
  // CHECK: tfm.rms_norm {{.*}} {epsilon = 9.99999974E-6 : f32}
  %h = tfm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  // CHECK: tfm.linear
  %q = tfm.linear %h, %wq : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %k = tfm.linear %h, %wk : tensor<?x8xf32>, tensor<4x8xf16> -> tensor<?x4xf32>
  %v = tfm.linear %h, %wv : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  // CHECK: tfm.rope {{.*}}layout = #tfm.rope_layout<interleaved>
  %qr = tfm.rope %q, %pos {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  // CHECK: tfm.rope {{.*}}layout = #tfm.rope_layout<rotate_half>
  %kr = tfm.rope %k, %pos {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<rotate_half>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  // CHECK: tfm.attention {{.*}} {heads = 2 : i64, layer = 0 : i64} : {{.*}}<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, f32> -> tensor<?x8xf32>
  %a = tfm.attention %qr, %kr, %v, %pos, %cache {layer = 0, heads = 2} : tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, f32> -> tensor<?x8xf32>
  // CHECK: tfm.add
  %r = tfm.add %x, %a : tensor<?x8xf32>
  %up = tfm.linear %r, %w1 : tensor<?x8xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  // CHECK: tfm.silu_mul
  %s = tfm.silu_mul %up, %up : tensor<?x16xf32>
  // CHECK: tfm.logits {{.*}} : tensor<?x8xf32>, tensor<10x8xbf16> -> tensor<?x10xf32>
  %l = tfm.logits %r, %emb : tensor<?x8xf32>, tensor<10x8xbf16> -> tensor<?x10xf32>
  return %l : tensor<?x10xf32>
}

// Compressed cache element types: a row format's f32 window is printed when
// above 0 (window = 0, no window, is the default and not printed), as KIVI's
// group and window are.
// CHECK-LABEL: func @kv_quant_types
// CHECK-SAME: !tfm.kv_quant<bfp4, block = 2, window = 8>
// CHECK-SAME: !tfm.kv_quant<int8, block = 4>
// CHECK-SAME: !tfm.kv_quant<int8, block = 4, window = 3>
// CHECK-SAME: !tfm.kv_quant<int4, block = 2, group = 2, window = 2>
func.func @kv_quant_types(
    %a: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, !tfm.kv_quant<bfp4, block = 2, window = 8>>,
    %b: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, !tfm.kv_quant<int8, block = 4, window = 0>>,
    %c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, !tfm.kv_quant<int8, block = 4, window = 3>>,
    %d: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, !tfm.kv_quant<int4, block = 2, group = 2, window = 2>>) {
  return
}
