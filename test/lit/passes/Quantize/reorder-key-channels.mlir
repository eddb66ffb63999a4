// Brackets become parentheses before FileCheck, which reads [[ as a variable.
// RUN: lathe-opt %s --split-input-file --lathe-reorder-key-channels --mlir-print-elementsattrs-with-hex-if-larger=-1 | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s
// The result parses and verifies again.
// RUN: lathe-opt %s --split-input-file --lathe-reorder-key-channels | lathe-opt --split-input-file | FileCheck %s --check-prefix=ROUND
// ROUND-COUNT-6: pair_order = array<i32:

// One KV head of 8 (4 rotate-half pairs (j, j + 4)) read by two query heads,
// a bfp4 cache with blocks of 4 values: 2 pairs a block. The key rows' mean
// squares per pair are 3.25, 136.25, 10.25, 36.25 and the queries weigh
// them alike, so the pairs sort largest first, 1 3 2 0: pairs 1 and 3 share
// a block, 2 and 0 the other. Rows move as whole pairs and land interleaved
// (new channels 2j, 2j + 1 = old pair order[j]), in the keys and in both
// query heads; the ropes turn the new positions at the old pairs'
// frequencies and become interleaved.

// CHECK-LABEL: func @sorted
// CHECK-DAG: tfm.weight "wk" {value = dense<((8.000000e+00, 0.000000e+00), (8.500000e+00, 0.000000e+00), (4.000000e+00, 0.000000e+00), (4.500000e+00, 0.000000e+00), (2.000000e+00, 0.000000e+00), (2.500000e+00, 0.000000e+00), (1.000000e+00, 0.000000e+00), (1.500000e+00, 0.000000e+00))> : tensor<8x2xf32>}
// CHECK-DAG: tfm.weight "wq" {value = dense<((1.000000e+00, 1.000000e+00), (1.000000e+00, 5.000000e+00), (1.000000e+00, 3.000000e+00), (1.000000e+00, 7.000000e+00), (1.000000e+00, 2.000000e+00), (1.000000e+00, 6.000000e+00), (1.000000e+00, 0.000000e+00), (1.000000e+00, 4.000000e+00), (1.000000e+00, 1.100000e+01), (1.000000e+00, 1.500000e+01), (1.000000e+00, 1.300000e+01), (1.000000e+00, 1.700000e+01), (1.000000e+00, 1.200000e+01), (1.000000e+00, 1.600000e+01), (1.000000e+00, 1.000000e+01), (1.000000e+00, 1.400000e+01))> : tensor<16x2xf32>}
// CHECK-DAG: tfm.rope %{{.*}} {head_dim = 8 : i64, layout = #tfm.rope_layout<interleaved>, pair_order = array<i32: 1, 3, 2, 0>, theta = 1.000000e+04 : f32} : tensor<?x16xf32>
// CHECK-DAG: tfm.rope %{{.*}} {head_dim = 8 : i64, layout = #tfm.rope_layout<interleaved>, pair_order = array<i32: 1, 3, 2, 0>, theta = 1.000000e+04 : f32} : tensor<?x8xf32>
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, capacity = 16, !tfm.kv_quant<bfp4, block = 4>>
func.func @sorted(%x: tensor<?x2xf32>, %p: tensor<?xi32>, %c: !bfp) -> tensor<?x16xf32> {
  %wk = tfm.weight "wk" {value = dense<[[1.0, 0.0], [8.0, 0.0], [2.0, 0.0], [4.0, 0.0], [1.5, 0.0], [8.5, 0.0], [2.5, 0.0], [4.5, 0.0]]> : tensor<8x2xf32>} : tensor<8x2xf32>
  // Row n of the queries holds n in its second column, to follow it; that
  // input's calibrated rms of 1e-3 keeps the queries' squares alike.
  %wq = tfm.weight "wq" {value = dense<[[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0], [1.0, 4.0], [1.0, 5.0], [1.0, 6.0], [1.0, 7.0], [1.0, 10.0], [1.0, 11.0], [1.0, 12.0], [1.0, 13.0], [1.0, 14.0], [1.0, 15.0], [1.0, 16.0], [1.0, 17.0]]> : tensor<16x2xf32>} : tensor<16x2xf32>
  %wv = tfm.weight "wv" {value = dense<1.0> : tensor<8x2xf32>} : tensor<8x2xf32>
  %q = tfm.linear %x, %wq {tfm.calib_rms = dense<[1.0, 1.0e-3]> : tensor<2xf32>} : tensor<?x2xf32>, tensor<16x2xf32> -> tensor<?x16xf32>
  %k = tfm.linear %x, %wk : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %v = tfm.linear %x, %wv : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %qr = tfm.rope %q, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<rotate_half>} : tensor<?x16xf32>, tensor<?xi32> -> tensor<?x16xf32>
  %kr = tfm.rope %k, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<rotate_half>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 2 : i64, layer = 0 : i64} : tensor<?x16xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !bfp -> tensor<?x16xf32>
  return %a : tensor<?x16xf32>
}

// -----

// An outlier pair the queries barely read (the case of an exact rescaling:
// keys x 2^k, queries / 2^k): interleaved pairs with key mean squares 1e4,
// 100, 10, 1 and query mean squares 1e-4, 1, 1, 1e-2. Sorting largest first
// would be the stored order and leave pair 1, which the queries read, in
// the outlier's block; the greedy fill gives the outlier pair 3 instead,
// which they barely read: 0 3 1 2. The calibrated input rms (2 and 0.5)
// weighs the columns; the key bias counts in the estimates and moves with
// its rows.

// CHECK-LABEL: func @outlier
// CHECK-DAG: tfm.weight "bk" {value = dense<(0.000000e+00, 1.000000e+00, 6.000000e+00, 7.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00, 5.000000e+00)> : tensor<8xf32>}
// CHECK-DAG: pair_order = array<i32: 0, 3, 1, 2>
!cache = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, capacity = 16, !tfm.kv_quant<bfp4, block = 4>>
func.func @outlier(%x: tensor<?x2xf32>, %p: tensor<?xi32>, %c: !cache) -> tensor<?x8xf32> {
  %wk = tfm.weight "wk" {value = dense<[[50.0, 0.0], [50.0, 0.0], [5.0, 0.0], [5.0, 0.0], [0.0, 4.472136], [0.0, 4.472136], [0.0, 1.4142135], [0.0, 1.4142135]]> : tensor<8x2xf32>} : tensor<8x2xf32>
  %bk = tfm.weight "bk" {value = dense<[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]> : tensor<8xf32>} : tensor<8xf32>
  %wq = tfm.weight "wq" {value = dense<[[0.005, 0.0], [0.005, 0.0], [0.5, 0.0], [0.5, 0.0], [0.5, 0.0], [0.5, 0.0], [0.05, 0.0], [0.05, 0.0]]> : tensor<8x2xf32>} : tensor<8x2xf32>
  %wv = tfm.weight "wv" {value = dense<1.0> : tensor<8x2xf32>} : tensor<8x2xf32>
  %q = tfm.linear %x, %wq {tfm.calib_rms = dense<[2.0, 0.5]> : tensor<2xf32>} : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %k0 = tfm.linear %x, %wk {tfm.calib_rms = dense<[2.0, 0.5]> : tensor<2xf32>} : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %k = tfm.bias_add %k0, %bk : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  %v = tfm.linear %x, %wv : tensor<?x2xf32>, tensor<8x2xf32> -> tensor<?x8xf32>
  %qr = tfm.rope %q, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %kr = tfm.rope %k, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !cache -> tensor<?x8xf32>
  return %a : tensor<?x8xf32>
}

// -----

// Packed weights (a GGUF model's, or ones quantized before) move as whole
// packed rows, bytes unchanged, and stay packed. bfp8 rows of 32 values: an
// exponent byte, then 32 mantissas of 64; the exponents 0x7F, 0x82, 0x80,
// 0x81 per pair make pair values of 1, 8, 2 and 4: order 1 3 2 0. (The
// bytes print as signed i8: 0x82 is -126, 0x7F 127.)

// CHECK-LABEL: func @packed
// CHECK: tfm.weight "wk" {value = dense<(-126, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, -126, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, -127, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, -127, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, -128, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, -128, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 127, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 127, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64)> : tensor<264xi8>} : tensor<8x32x!tfm.bfp<mantissa = 8, block = 32>>
// CHECK: pair_order = array<i32: 1, 3, 2, 0>
!bfp = !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 8, capacity = 16, !tfm.kv_quant<bfp4, block = 4>>
func.func @packed(%x: tensor<?x32xf32>, %v: tensor<?x8xf32>, %p: tensor<?xi32>, %c: !bfp) -> tensor<?x8xf32> {
  %wk = tfm.weight "wk" {value = dense<"0x7F40404040404040404040404040404040404040404040404040404040404040407F4040404040404040404040404040404040404040404040404040404040404040824040404040404040404040404040404040404040404040404040404040404040824040404040404040404040404040404040404040404040404040404040404040804040404040404040404040404040404040404040404040404040404040404040804040404040404040404040404040404040404040404040404040404040404040814040404040404040404040404040404040404040404040404040404040404040814040404040404040404040404040404040404040404040404040404040404040"> : tensor<264xi8>} : tensor<8x32x!tfm.bfp<mantissa = 8, block = 32>>
  %wq = tfm.weight "wq" {value = dense<1.0> : tensor<8x32xf32>} : tensor<8x32xf32>
  %q0 = tfm.linear %x, %wq : tensor<?x32xf32>, tensor<8x32xf32> -> tensor<?x8xf32>
  %k = tfm.linear %x, %wk : tensor<?x32xf32>, tensor<8x32x!tfm.bfp<mantissa = 8, block = 32>> -> tensor<?x8xf32>
  %qr = tfm.rope %q0, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %kr = tfm.rope %k, %p {head_dim = 8, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %a = tfm.attention %qr, %kr, %v, %p, %c {heads = 1 : i64, layer = 0 : i64} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !bfp -> tensor<?x8xf32>
  return %a : tensor<?x8xf32>
}
