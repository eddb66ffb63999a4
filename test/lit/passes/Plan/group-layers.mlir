// RUN: lathe-opt %s --lathe-group-layers="groups=2" | FileCheck %s --check-prefix=TWO
// RUN: lathe-opt %s --lathe-group-layers="groups=3" | FileCheck %s --check-prefix=THREE
// RUN: lathe-opt %s --lathe-group-layers="groups=4" | lathe-opt | FileCheck %s --check-prefix=EACH
// RUN: lathe-opt %s --lathe-group-layers="groups=1" | FileCheck %s --check-prefix=ONE
// RUN: lathe-opt %s --lathe-group-layers="bytes=900" | FileCheck %s --check-prefix=B900
// RUN: lathe-opt %s --lathe-group-layers="bytes=1952" | FileCheck %s --check-prefix=ALL
// RUN: lathe-opt %s --lathe-group-layers="bytes=1951" | FileCheck %s --check-prefix=B1951
// RUN: lathe-opt %s --lathe-group-layers="bytes=544" 2>&1 | FileCheck %s --check-prefix=B544

// Four layers, each a norm, a query product, attention and an output
// product; layers 1-3 begin with the add_rms_norm that also finishes the
// previous layer's residual. Weight bytes per layer: 544 (a 32-byte gain,
// two 8x8 f32 products), 288 (f16 products), 544, and 576 (the last layer
// holds the final norm's gain too); the embedding and the classifier
// belong to no layer. The kernels are unchanged.

// By count: as even as can be, the first groups one layer larger.
// TWO-LABEL: func @forward
// TWO-SAME: attributes {plan.layer_groups = #plan.layer_groups<first = [0, 2], layers = 4>}
// TWO-NEXT: tfm.weight "emb"
// TWO-NEXT: plan.buffer
// TWO-NEXT: plan.embedding
// THREE: plan.layer_groups = #plan.layer_groups<first = [0, 2, 3], layers = 4>
// EACH: plan.layer_groups = #plan.layer_groups<first = [0, 1, 2, 3], layers = 4>
// ONE: plan.layer_groups = #plan.layer_groups<first = [0], layers = 4>

// By bytes, greedy: 544 + 288 fit 900, 544 more do not; 544 + 576 neither.
// B900: plan.layer_groups = #plan.layer_groups<first = [0, 2, 3], layers = 4>
// ALL: plan.layer_groups = #plan.layer_groups<first = [0], layers = 4>
// B1951: plan.layer_groups = #plan.layer_groups<first = [0, 3], layers = 4>
// A layer above the budget is a group of its own, with a warning.
// B544: warning: lathe-group-layers: layer 3 has 576 bytes of weights, more than bytes=544: it is a group of its own
// B544-NOT: warning
// B544: plan.layer_groups = #plan.layer_groups<first = [0, 1, 2, 3], layers = 4>
!cache = !tfm.kv_cache<layers = 4, kv_heads = 2, head_dim = 4, capacity = 64, f32>
!b8 = !plan.buffer<8, f32>
func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>, %c: !cache) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !b8
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !b8
  %n = plan.buffer : !b8
  %q = plan.buffer : !b8
  %a = plan.buffer : !b8
  %o = plan.buffer : !b8
  %s = plan.buffer : !b8

  %g0 = tfm.weight "g0" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  plan.rms_norm %x, %g0 -> %n {epsilon = 1.0e-5 : f32} : !b8, tensor<8xf32>, !b8
  %q0 = tfm.weight "q0" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  plan.matmul %n, %q0 -> %q : !b8, tensor<8x8xf32>, !b8
  plan.attention %q, %n, %n, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %o0 = tfm.weight "o0" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  plan.matmul %a, %o0 -> %o : !b8, tensor<8x8xf32>, !b8

  %g1 = tfm.weight "g1" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  plan.add_rms_norm %x, %o, %g1 -> %s, %n {epsilon = 1.0e-5 : f32} : tensor<8xf32>, !b8
  %q1 = tfm.weight "q1" {value = dense<0.5> : tensor<8x8xf16>} : tensor<8x8xf16>
  plan.matmul %n, %q1 -> %q : !b8, tensor<8x8xf16>, !b8
  plan.attention %q, %n, %n, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 1 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %o1 = tfm.weight "o1" {value = dense<0.5> : tensor<8x8xf16>} : tensor<8x8xf16>
  plan.matmul %a, %o1 -> %o : !b8, tensor<8x8xf16>, !b8

  %g2 = tfm.weight "g2" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  plan.add_rms_norm %s, %o, %g2 -> %x, %n {epsilon = 1.0e-5 : f32} : tensor<8xf32>, !b8
  %q2 = tfm.weight "q2" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  plan.matmul %n, %q2 -> %q : !b8, tensor<8x8xf32>, !b8
  plan.attention %q, %n, %n, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 2 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %o2 = tfm.weight "o2" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  plan.matmul %a, %o2 -> %o : !b8, tensor<8x8xf32>, !b8

  %g3 = tfm.weight "g3" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  plan.add_rms_norm %x, %o, %g3 -> %s, %n {epsilon = 1.0e-5 : f32} : tensor<8xf32>, !b8
  %q3 = tfm.weight "q3" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  plan.matmul %n, %q3 -> %q : !b8, tensor<8x8xf32>, !b8
  plan.attention %q, %n, %n, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 3 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %o3 = tfm.weight "o3" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  plan.matmul %a, %o3 -> %o : !b8, tensor<8x8xf32>, !b8

  %gf = tfm.weight "norm" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  plan.add_rms_norm %s, %o, %gf -> %x, %n {epsilon = 1.0e-5 : f32} : tensor<8xf32>, !b8
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %n, %e -> %l : !b8, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}
