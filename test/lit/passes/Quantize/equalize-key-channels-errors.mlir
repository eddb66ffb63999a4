// RUN: lathe-opt %s --split-input-file --lathe-equalize-key-channels --verify-diagnostics
// Options out of range are refused with one line.
// RUN: not lathe-opt %s --split-input-file --lathe-equalize-key-channels="max-shift=65" 2>&1 | FileCheck %s --check-prefix=SHIFT
// SHIFT: error: lathe-equalize-key-channels: max-shift=65 is not from 0 to 64
// RUN: not lathe-opt %s --split-input-file --lathe-equalize-key-channels="strength=1.5" 2>&1 | FileCheck %s --check-prefix=STRENGTH
// STRENGTH: error: lathe-equalize-key-channels: strength=1.5 is not from 0 to 1

// Packed weights (a GGUF model's, or ones quantized before) cannot take a
// power of two exactly through this pass: the keys stay as they are.
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, !tfm.kv_quant<bfp4, block = 2>>
func.func @packed(%x: tensor<?x32xf32>, %v: tensor<?x4xf32>, %p: tensor<?xi32>, %c: !bfp) -> tensor<?x4xf32> {
  %wk = tfm.weight "wk" {value = dense<64> : tensor<132xi8>} : tensor<4x32x!tfm.bfp<mantissa = 8, block = 32>>
  %wq = tfm.weight "wq" {value = dense<1.0> : tensor<4x32xf32>} : tensor<4x32xf32>
  %q = tfm.linear %x, %wq : tensor<?x32xf32>, tensor<4x32xf32> -> tensor<?x4xf32>
  %k = tfm.linear %x, %wk : tensor<?x32xf32>, tensor<4x32x!tfm.bfp<mantissa = 8, block = 32>> -> tensor<?x4xf32>
  %qr = tfm.rope %q, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  %kr = tfm.rope %k, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  // expected-warning @+1 {{keys left unscaled: weight 'wk' is packed ('tensor<4x32x!tfm.bfp<mantissa = 8, block = 32>>'); only float weights scale exactly}}
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?xi32>, !bfp -> tensor<?x4xf32>
  return %a : tensor<?x4xf32>
}

// -----

// Keys that are not rotated projections of their own stay as they are.
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, !tfm.kv_quant<bfp4, block = 2>>
func.func @unrotated(%q: tensor<?x4xf32>, %k: tensor<?x4xf32>, %v: tensor<?x4xf32>, %p: tensor<?xi32>, %c: !bfp) -> tensor<?x4xf32> {
  // expected-warning @+1 {{keys left unscaled: the keys are not produced by tfm.rope}}
  %a = tfm.attention %q, %k, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?xi32>, !bfp -> tensor<?x4xf32>
  return %a : tensor<?x4xf32>
}

// -----

// Queries rotated at another theta than the keys.
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, !tfm.kv_quant<bfp4, block = 2>>
func.func @mismatched(%x: tensor<?x2xf32>, %v: tensor<?x4xf32>, %p: tensor<?xi32>, %c: !bfp) -> tensor<?x4xf32> {
  %wk = tfm.weight "wk" {value = dense<1.0> : tensor<4x2xf32>} : tensor<4x2xf32>
  %wq = tfm.weight "wq" {value = dense<1.0> : tensor<4x2xf32>} : tensor<4x2xf32>
  %q0 = tfm.linear %x, %wq : tensor<?x2xf32>, tensor<4x2xf32> -> tensor<?x4xf32>
  %k = tfm.linear %x, %wk : tensor<?x2xf32>, tensor<4x2xf32> -> tensor<?x4xf32>
  %qr = tfm.rope %q0, %p {head_dim = 4, theta = 500000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  %kr = tfm.rope %k, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  // expected-warning @+1 {{keys left unscaled: the queries and keys are rotated differently}}
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?xi32>, !bfp -> tensor<?x4xf32>
  return %a : tensor<?x4xf32>
}
