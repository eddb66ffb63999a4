// RUN: lathe-opt %s --lathe-plan-spec-tree="shape=4x2x2" | FileCheck %s --check-prefix=SHAPE
// RUN: lathe-opt %s --lathe-plan-spec-tree | FileCheck %s --check-prefix=DEFAULT
// RUN: lathe-opt %s --lathe-plan-spec-tree="shape=1" | lathe-opt | FileCheck %s --check-prefix=CHAIN

// The step records the tree it verifies: branching per depth and the node
// count, the root included (4x2x2: 1 + 4 + 8 + 16 = 29 tokens per step;
// default 4x2x2x1x1x1x1x1: 109), and the attribute prints back. The
// kernels are unchanged.

// SHAPE-LABEL: func @forward
// SHAPE-SAME: attributes {plan.spec_tree = #plan.spec_tree<branching = [4, 2, 2], nodes = 29>}
// SHAPE-NEXT: tfm.weight
// SHAPE-NEXT: plan.buffer
// SHAPE-NEXT: plan.embedding
// DEFAULT: plan.spec_tree = #plan.spec_tree<branching = [4, 2, 2, 1, 1, 1, 1, 1], nodes = 109>
// CHAIN: plan.spec_tree = #plan.spec_tree<branching = [1], nodes = 2>
func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>,
                   %c: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 128, f32>) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !plan.buffer<8, f32>
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !plan.buffer<8, f32>
  %a = plan.buffer : !plan.buffer<8, f32>
  plan.attention %x, %x, %x, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !plan.buffer<8, f32>, !plan.buffer<8, f32>, !plan.buffer<8, f32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 128, f32>, !plan.buffer<8, f32>
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %a, %e -> %l : !plan.buffer<8, f32>, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}
