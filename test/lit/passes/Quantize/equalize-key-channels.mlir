// Brackets become parentheses before FileCheck, which reads [[ as a variable.
// RUN: lathe-opt %s --split-input-file --lathe-equalize-key-channels | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s
// RUN: lathe-opt %s --split-input-file --lathe-equalize-key-channels="strength=1" | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s --check-prefix=FULL
// RUN: lathe-opt %s --split-input-file --lathe-equalize-key-channels="max-shift=0" | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s --check-prefix=NONE
// The result parses and verifies again.
// RUN: lathe-opt %s --split-input-file --lathe-equalize-key-channels | lathe-opt --split-input-file | FileCheck %s --check-prefix=ROUND
// ROUND-COUNT-2: tfm.attention

// One KV head of 4 channels (2 interleaved pairs) read by two query heads.
// Without calibration the inputs count as rms 1: the key pairs' mean
// squares are 2 * 4^2 = 32 and 2 * 0.25^2 + 0.25^2 (the bias) = 0.1875,
// log2 5 and -2.415, their geometric mean 2^1.29. Half strength (the
// default) asks for round(0.5 * (1.29 - 5) / 2) = -1 and
// round(0.5 * (1.29 + 2.415) / 2) = 1: key pair 0 halves, pair 1 doubles,
// bias included, and both query heads take the inverse. Strength 1 asks
// for -2 and 2; max-shift=0 changes nothing.

// CHECK-LABEL: func @two_pairs
// CHECK-DAG: tfm.weight "wk" {value = dense<((2.000000e+00, 0.000000e+00), (2.000000e+00, 0.000000e+00), (5.000000e-01, 0.000000e+00), (5.000000e-01, 0.000000e+00))> : tensor<4x2xf32>}
// CHECK-DAG: tfm.weight "bk" {value = dense<(0.000000e+00, 0.000000e+00, 0.000000e+00, 5.000000e-01)> : tensor<4xf32>}
// CHECK-DAG: tfm.weight "wq" {value = dense<((2.000000e+00, 1.000000e+00), (2.000000e+00, 1.000000e+00), (5.000000e-01, 2.500000e-01), (5.000000e-01, 2.500000e-01), (2.000000e+00, 1.000000e+00), (2.000000e+00, 1.000000e+00), (5.000000e-01, 2.500000e-01), (5.000000e-01, 2.500000e-01))> : tensor<8x2xf32>}
// The values and the rope are left alone.
// CHECK-DAG: tfm.weight "wv" {value = dense<1.000000e+00> : tensor<4x2xf32>}
// CHECK-DAG: tfm.rope %{{.*}} {head_dim = 4 : i64, layout = #tfm.rope_layout<interleaved>, theta = 1.000000e+04 : f32} : tensor<?x4xf32>
// FULL-LABEL: func @two_pairs
// FULL-DAG: tfm.weight "wk" {value = dense<((1.000000e+00, 0.000000e+00), (1.000000e+00, 0.000000e+00), (1.000000e+00, 0.000000e+00), (1.000000e+00, 0.000000e+00))> : tensor<4x2xf32>}
// FULL-DAG: tfm.weight "bk" {value = dense<(0.000000e+00, 0.000000e+00, 0.000000e+00, 1.000000e+00)> : tensor<4xf32>}
// FULL-DAG: tfm.weight "wq" {value = dense<((4.000000e+00, 2.000000e+00), (4.000000e+00, 2.000000e+00), (2.500000e-01, 1.250000e-01), (2.500000e-01, 1.250000e-01), (4.000000e+00, 2.000000e+00), (4.000000e+00, 2.000000e+00), (2.500000e-01, 1.250000e-01), (2.500000e-01, 1.250000e-01))> : tensor<8x2xf32>}
// NONE-LABEL: func @two_pairs
// NONE-DAG: tfm.weight "wk" {value = dense<((4.000000e+00, 0.000000e+00), (4.000000e+00, 0.000000e+00), (2.500000e-01, 0.000000e+00), (2.500000e-01, 0.000000e+00))> : tensor<4x2xf32>}
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, !tfm.kv_quant<bfp4, block = 2>>
func.func @two_pairs(%x: tensor<?x2xf32>, %p: tensor<?xi32>, %c: !bfp) -> tensor<?x8xf32> {
  %wk = tfm.weight "wk" {value = dense<[[4.0, 0.0], [4.0, 0.0], [0.25, 0.0], [0.25, 0.0]]> : tensor<4x2xf32>} : tensor<4x2xf32>
  %bk = tfm.weight "bk" {value = dense<[0.0, 0.0, 0.0, 0.25]> : tensor<4xf32>} : tensor<4xf32>
  %wq = tfm.weight "wq" {value = dense<[[1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5]]> : tensor<8x2xf32>} : tensor<8x2xf32>
  %wv = tfm.weight "wv" {value = dense<1.0> : tensor<4x2xf32>} : tensor<4x2xf32>
  %q = tfm.linear %x, %wq : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %k0 = tfm.linear %x, %wk : tensor<?x2xf32>, tensor<4x2xf32> -> tensor<?x4xf32>
  %k = tfm.bias_add %k0, %bk : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  %v = tfm.linear %x, %wv : tensor<?x2xf32>, tensor<4x2xf32> -> tensor<?x4xf32>
  %qr = tfm.rope %q, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %kr = tfm.rope %k, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 2 : i64, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?xi32>, !bfp -> tensor<?x8xf32>
  return %a : tensor<?x8xf32>
}

// -----

// f16 weights keep their type, and a scale they cannot store exactly is
// moved toward 1: rotate-half pairs (j, j + 2) with key mean squares
// 2 * 256^2 = 2^17 and 2 * 0.5^2 = 2^-1, geometric mean 2^8. Pair 0 is
// asked for round(0.5 * (8 - 17) / 2) = -2, but its queries of 40000
// times 4, or 2, leave f16 (max 65504): it stays. Pair 1 is asked for
// round(0.5 * (8 + 1) / 2) = 2: keys x 4, queries / 4.

// CHECK-LABEL: func @f16_limits
// CHECK-DAG: tfm.weight "wk" {value = dense<((2.560000e+02), (2.000000e+00), (2.560000e+02), (2.000000e+00))> : tensor<4x1xf16>}
// CHECK-DAG: tfm.weight "wq" {value = dense<((4.000000e+04), (2.500000e-01), (4.000000e+04), (2.500000e-01))> : tensor<4x1xf16>}
!f32 = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, f32>
func.func @f16_limits(%x: tensor<?x1xf32>, %p: tensor<?xi32>, %c: !f32) -> tensor<?x4xf32> {
  %wk = tfm.weight "wk" {value = dense<[[256.0], [0.5], [256.0], [0.5]]> : tensor<4x1xf16>} : tensor<4x1xf16>
  %wq = tfm.weight "wq" {value = dense<[[40000.0], [1.0], [40000.0], [1.0]]> : tensor<4x1xf16>} : tensor<4x1xf16>
  %wv = tfm.weight "wv" {value = dense<1.0> : tensor<4x1xf32>} : tensor<4x1xf32>
  %q = tfm.linear %x, %wq : tensor<?x1xf32>, tensor<4x1xf16> -> tensor<?x4xf32>
  %k = tfm.linear %x, %wk : tensor<?x1xf32>, tensor<4x1xf16> -> tensor<?x4xf32>
  %v = tfm.linear %x, %wv : tensor<?x1xf32>, tensor<4x1xf32> -> tensor<?x4xf32>
  %qr = tfm.rope %q, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<rotate_half>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  %kr = tfm.rope %k, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<rotate_half>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?xi32>, !f32 -> tensor<?x4xf32>
  return %a : tensor<?x4xf32>
}
