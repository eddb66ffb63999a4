// RUN: lathe-opt %s --lathe-lower-to-plan | FileCheck %s

// Each tfm op becomes its kernel, writing a new buffer created right before
// it; weights, token ids, positions and the cache stay; the function
// returns the logits buffer.

// CHECK-LABEL: func @forward
// CHECK-SAME: (%[[T:.*]]: tensor<?xi32>, %[[P:.*]]: tensor<?xi32>, %[[C:.*]]: !tfm.kv_cache<{{.*}}>) -> !plan.buffer<16, f32>
// CHECK: %[[E:.*]] = tfm.weight "emb"
// CHECK: %[[X:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.embedding %[[E]][%[[T]]] -> %[[X]]
// CHECK: %[[H:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.rms_norm %[[X]], %{{.*}} -> %[[H]] {epsilon = 9.99999974E-6 : f32}
// CHECK: %[[Q:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.matmul %[[H]], %{{.*}} -> %[[Q]] :
// CHECK-NOT: activations
// CHECK: %[[QR:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.rope %[[Q]] at %[[P]] -> %[[QR]] {head_dim = 4 : i64, layout = #tfm.rope_layout<interleaved>, theta = 1.000000e+04 : f32}
// CHECK: %[[A:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.attention %[[QR]], %[[QR]], %[[Q]], %[[P]], %[[C]] -> %[[A]] {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64}
// CHECK: %[[S:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.add %[[X]], %[[A]] -> %[[S]]
// CHECK: %[[G:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.silu_mul %[[S]], %[[S]] -> %[[G]]
// CHECK: %[[L:.*]] = plan.buffer : <16, f32>
// CHECK-NEXT: plan.logits %[[G]], %[[E]] -> %[[L]]
// CHECK-NEXT: return %[[L]] : !plan.buffer<16, f32>
// CHECK-NOT: tfm.linear
func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>,
                   %c: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>) -> tensor<?x16xf32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %g = tfm.weight "g" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  %w = tfm.weight "w" {value = dense<0.25> : tensor<8x8xf32>} : tensor<8x8xf32>
  %x = tfm.embedding %e[%t] : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %h = tfm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  %q = tfm.linear %h, %w : tensor<?x8xf32>, tensor<8x8xf32> -> tensor<?x8xf32>
  %qr = tfm.rope %q, %p {head_dim = 4 : i64, theta = 1.0e4 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %a = tfm.attention %qr, %qr, %q, %p, %c {layer = 0 : i64, heads = 2 : i64} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32> -> tensor<?x8xf32>
  %s = tfm.add %x, %a : tensor<?x8xf32>
  %m = tfm.silu_mul %s, %s : tensor<?x8xf32>
  %l = tfm.logits %m, %e : tensor<?x8xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return %l : tensor<?x16xf32>
}
