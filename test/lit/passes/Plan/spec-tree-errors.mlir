// RUN: lathe-opt %s --split-input-file --lathe-plan-spec-tree="shape=4x2" --verify-diagnostics
// RUN: not lathe-opt %s --split-input-file --lathe-plan-spec-tree="shape=0x2" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not lathe-opt %s --split-input-file --lathe-plan-spec-tree="shape=4x" 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not lathe-opt %s --split-input-file --lathe-plan-spec-tree="shape=32x32x32" 2>&1 | FileCheck %s --check-prefix=NODES
// RUN: not lathe-opt %s --split-input-file --lathe-plan-spec-tree="shape=4,2" 2>&1 | FileCheck %s --check-prefix=COMMA

// Malformed shapes: the runtime's parser's one-line errors, on the function.
// ZERO: error: lathe-plan-spec-tree: tree shape '0x2': depth 1 has branching 0; expected positive integers separated by 'x', e.g. 4x2x2, or 'default'
// EMPTY: error: lathe-plan-spec-tree: tree shape '4x': depth 2 is empty;
// NODES: error: lathe-plan-spec-tree: tree shape '32x32x32': more than 1024 nodes;
// COMMA: error: lathe-plan-spec-tree: tree shape '4,2': depth 1 has branching '4,2', not a number;

// The tree 4x2 (13 nodes) does not fit a cache of 8 positions: a
// verification step stores every node's key and value.
func.func @small_cache(%t: tensor<?xi32>, %p: tensor<?xi32>,
                       %c: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !plan.buffer<8, f32>
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !plan.buffer<8, f32>
  %a = plan.buffer : !plan.buffer<8, f32>
  // expected-error @+1 {{lathe-plan-spec-tree: tree 4x2 has 13 nodes, more than the 8 positions of its KV cache (a verification step stores every node's key and value)}}
  plan.attention %x, %x, %x, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !plan.buffer<8, f32>, !plan.buffer<8, f32>, !plan.buffer<8, f32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>, !plan.buffer<8, f32>
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %a, %e -> %l : !plan.buffer<8, f32>, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}

// -----

// A step of a fixed 8 tokens cannot run 13.
// expected-error @+1 {{lathe-plan-spec-tree: tree 4x2 has 13 nodes, more than the 8 tokens of the step's argument #0}}
func.func @static_tokens(%t: tensor<8xi32>, %p: tensor<8xi32>,
                         %c: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 64, f32>) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !plan.buffer<8, f32>
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<8xi32>, !plan.buffer<8, f32>
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %x, %e -> %l : !plan.buffer<8, f32>, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}

// -----

// Positions computed inside the step are not the batch's: a node's
// position (its depth) and ancestors come from the step's arguments.
func.func private @positions() -> tensor<?xi32>
func.func @own_positions(%t: tensor<?xi32>, %p: tensor<?xi32>,
                         %c: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 64, f32>) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !plan.buffer<8, f32>
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !plan.buffer<8, f32>
  %q = func.call @positions() : () -> tensor<?xi32>
  %a = plan.buffer : !plan.buffer<8, f32>
  // expected-error @+1 {{lathe-plan-spec-tree: plan.attention must read the step's positions and KV cache arguments}}
  plan.attention %x, %x, %x, %q, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !plan.buffer<8, f32>, !plan.buffer<8, f32>, !plan.buffer<8, f32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 64, f32>, !plan.buffer<8, f32>
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %a, %e -> %l : !plan.buffer<8, f32>, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}

// -----

// Still tfm: the pass runs on the plan, whose step returns every node's
// scores.
// expected-error @+1 {{lathe-plan-spec-tree: expects a plan step with a plan.logits (run lathe-lower-to-plan first): a verification step returns every node's scores}}
func.func @not_lowered(%t: tensor<?xi32>) -> tensor<?x16xf32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = tfm.embedding %e[%t] : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %l = tfm.logits %x, %e : tensor<?x8xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return %l : tensor<?x16xf32>
}
