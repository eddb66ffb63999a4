// RUN: lathe-opt %s | lathe-opt | FileCheck %s

// Every plan kernel parses and prints back.

// CHECK-LABEL: func @kernels
// CHECK: plan.embedding %{{.*}}[%{{.*}}] -> %[[X:.*]] : tensor<16x8xf32>, tensor<?xi32>, <8, f32>
// CHECK: plan.rms_norm %[[X]], %{{.*}} -> %{{.*}} {epsilon = 9.99999974E-6 : f32}
// CHECK: plan.matmul {{.*}} {activations = #plan.activations<int8>}
// CHECK: plan.matmuls %{{.*}}, [%{{.*}}, %{{.*}}] -> [%{{.*}}, %{{.*}}]
// CHECK: plan.rope %{{.*}} at %{{.*}} -> %{{.*}} {head_dim = 4 : i64, layout = #tfm.rope_layout<rotate_half>, theta = 5.000000e+05 : f32}
// CHECK: plan.attention {{.*}} {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 1 : i64, layer = 0 : i64}
// CHECK: plan.silu_mul
// CHECK: plan.add_rms_norm
// CHECK: plan.add
// CHECK: plan.logits
func.func @kernels(%tok: tensor<?xi32>, %pos: tensor<?xi32>,
                   %kv: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 8, f32>) -> !plan.buffer<16, f32> {
  %emb = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %g = tfm.weight "g" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  %w = tfm.weight "w" {value = dense<1> : tensor<8xi8>} : tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>
  %wk = tfm.weight "wk" {value = dense<0.5> : tensor<4x8xf32>} : tensor<4x8xf32>
  %x = plan.buffer : !plan.buffer<8, f32>
  %h = plan.buffer : !plan.buffer<8, f32>
  %q = plan.buffer : !plan.buffer<8, f32>
  %k = plan.buffer : !plan.buffer<4, f32>
  %v = plan.buffer : !plan.buffer<4, f32>
  %o = plan.buffer : !plan.buffer<8, f32>
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.embedding %emb[%tok] -> %x : tensor<16x8xf32>, tensor<?xi32>, !plan.buffer<8, f32>
  plan.rms_norm %x, %g -> %h {epsilon = 1.0e-5 : f32} : !plan.buffer<8, f32>, tensor<8xf32>, !plan.buffer<8, f32>
  plan.matmul %h, %w -> %q {activations = #plan.activations<int8>} : !plan.buffer<8, f32>, tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>, !plan.buffer<8, f32>
  plan.matmuls %h, [%wk, %wk] -> [%k, %v] : !plan.buffer<8, f32>, [tensor<4x8xf32>, tensor<4x8xf32>], [!plan.buffer<4, f32>, !plan.buffer<4, f32>]
  plan.rope %q at %pos -> %o {head_dim = 4 : i64, theta = 5.0e5 : f32, layout = #tfm.rope_layout<rotate_half>} : !plan.buffer<8, f32>, tensor<?xi32>, !plan.buffer<8, f32>
  plan.attention %o, %k, %v, %pos, %kv -> %q {layer = 0 : i64, heads = 2 : i64, kv_heads = 1 : i64, head_dim = 4 : i64} : !plan.buffer<8, f32>, !plan.buffer<4, f32>, !plan.buffer<4, f32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 8, f32>, !plan.buffer<8, f32>
  plan.silu_mul %q, %x -> %o : !plan.buffer<8, f32>
  plan.add_rms_norm %x, %o, %g -> %h, %q {epsilon = 1.0e-5 : f32} : tensor<8xf32>, !plan.buffer<8, f32>
  plan.add %h, %q -> %x : !plan.buffer<8, f32>
  plan.logits %x, %emb -> %l : !plan.buffer<8, f32>, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}

// The token tree a step verifies (lathe-plan-spec-tree) prints back.
// CHECK-LABEL: func @tree_step
// CHECK-SAME: attributes {plan.spec_tree = #plan.spec_tree<branching = [4, 2, 2], nodes = 29>}
func.func @tree_step() attributes {plan.spec_tree = #plan.spec_tree<branching = [4, 2, 2], nodes = 29>} {
  return
}

// The layer groups of a step (lathe-group-layers) print back.
// CHECK-LABEL: func @grouped_step
// CHECK-SAME: attributes {plan.layer_groups = #plan.layer_groups<first = [0, 3, 6], layers = 8>}
func.func @grouped_step() attributes {plan.layer_groups = #plan.layer_groups<first = [0, 3, 6], layers = 8>} {
  return
}
