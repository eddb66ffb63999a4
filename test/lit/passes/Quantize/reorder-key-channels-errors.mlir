// RUN: lathe-opt %s --split-input-file --lathe-reorder-key-channels --verify-diagnostics
// An explicit block that does not tile head_dim is refused the same way.
// RUN: not lathe-opt %s --split-input-file --lathe-reorder-key-channels="block=3" 2>&1 | FileCheck %s --check-prefix=BLOCK
// BLOCK: error: 'tfm.attention' op needs an even KV block dividing head_dim 8 to order key channels for (a bfp cache, or the pass's block option), got 3

// A plain cache has no blocks to order for, and no block option was given.
!f32 = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, capacity = 16, f32>
func.func @plain_cache(%q: tensor<?x8xf32>, %x: tensor<?x2xf32>, %v: tensor<?x8xf32>, %p: tensor<?xi32>, %c: !f32) -> tensor<?x8xf32> {
  %wk = tfm.weight "wk" {value = dense<1.0> : tensor<8x2xf32>} : tensor<8x2xf32>
  %wq = tfm.weight "wq" {value = dense<1.0> : tensor<8x2xf32>} : tensor<8x2xf32>
  %q0 = tfm.linear %x, %wq : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %k = tfm.linear %x, %wk : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %qr = tfm.rope %q0, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %kr = tfm.rope %k, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  // expected-error @+1 {{needs an even KV block dividing head_dim 8 to order key channels for (a bfp cache, or the pass's block option), got 0}}
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !f32 -> tensor<?x8xf32>
  return %a : tensor<?x8xf32>
}

// -----

// Keys that are not rotated projections of their own stay in order, with a
// warning: here the keys are a function argument.
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, capacity = 16, !tfm.kv_quant<bfp4, block = 4>>
func.func @unrotated(%q: tensor<?x8xf32>, %k: tensor<?x8xf32>, %v: tensor<?x8xf32>, %p: tensor<?xi32>, %c: !bfp) -> tensor<?x8xf32> {
  // expected-warning @+1 {{keys left in order: the keys are not produced by tfm.rope}}
  %a = tfm.attention %q, %k, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !bfp -> tensor<?x8xf32>
  return %a : tensor<?x8xf32>
}

// -----

// Rotated keys also read elsewhere: moving their channels would change
// that reader too.
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, capacity = 16, !tfm.kv_quant<bfp4, block = 4>>
func.func @shared(%x: tensor<?x2xf32>, %v: tensor<?x8xf32>, %p: tensor<?xi32>, %c: !bfp) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %wk = tfm.weight "wk" {value = dense<1.0> : tensor<8x2xf32>} : tensor<8x2xf32>
  %wq = tfm.weight "wq" {value = dense<1.0> : tensor<8x2xf32>} : tensor<8x2xf32>
  %q0 = tfm.linear %x, %wq : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %k = tfm.linear %x, %wk : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %qr = tfm.rope %q0, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %kr = tfm.rope %k, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  // expected-warning @+1 {{keys left in order: the keys are read by more than the attention}}
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !bfp -> tensor<?x8xf32>
  return %a, %kr : tensor<?x8xf32>, tensor<?x8xf32>
}

// -----

// Queries rotated at another theta than the keys.
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, capacity = 16, !tfm.kv_quant<bfp4, block = 4>>
func.func @mismatched(%x: tensor<?x2xf32>, %v: tensor<?x8xf32>, %p: tensor<?xi32>, %c: !bfp) -> tensor<?x8xf32> {
  %wk = tfm.weight "wk" {value = dense<1.0> : tensor<8x2xf32>} : tensor<8x2xf32>
  %wq = tfm.weight "wq" {value = dense<1.0> : tensor<8x2xf32>} : tensor<8x2xf32>
  %q0 = tfm.linear %x, %wq : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %k = tfm.linear %x, %wk : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %qr = tfm.rope %q0, %p {head_dim = 8, theta = 500000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %kr = tfm.rope %k, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  // expected-warning @+1 {{keys left in order: the queries and keys are rotated differently}}
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !bfp -> tensor<?x8xf32>
  return %a : tensor<?x8xf32>
}
