// Brackets become parentheses before FileCheck, which reads [[ as a variable.
// RUN: lathe-opt %s --split-input-file --lathe-reorder-channels="format=bfp4:block=16" --mlir-print-elementsattrs-with-hex-if-larger=-1 | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s
// RUN: lathe-opt %s --split-input-file --lathe-reorder-channels="format=bfp4:block=16" | lathe-opt --split-input-file --mlir-print-elementsattrs-with-hex-if-larger=-1 | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s

// The residual channels alternate tiny and large weight columns, so every
// 16-value block of the identity order mixes them and the tiny ones round to
// zero. The pass sorts the large (odd) channels first, then the tiny ones
// from largest to smallest: the embedding's
// columns, the RMSNorm gain and the linear's columns move together (the
// linear's rows, read by tfm.logits only, stay), and the calibration
// statistics follow their channels.

// CHECK-LABEL: func @residual
// CHECK-DAG: tfm.weight "emb" {value = dense<((1.000000e+00, 3.000000e+00, 5.000000e+00, {{.*}}, 2.900000e+01, 3.100000e+01, 3.000000e+01, 2.800000e+01, {{.*}}, 2.000000e+00, 0.000000e+00), (3.300000e+01, 3.500000e+01, {{.*}}> : tensor<4x32xf32>}
// CHECK-DAG: tfm.weight "gain" {value = dense<(1.010000e+00, 1.030000e+00, {{.*}}, 1.310000e+00, 1.300000e+00, 1.280000e+00, {{.*}}, 1.000000e+00)> : tensor<32xf32>}
// CHECK-DAG: tfm.weight "w" {value = dense<((1.000000e+01, 1.000000e+01, {{.*}}, 1.000000e+01, 3.100000e-01, 2.900000e-01, {{.*}}, 3.000000e-02, 0.00999999977), (1.010000e+01, {{.*}}> : tensor<4x32xf32>}
// CHECK-DAG: tfm.weight "cls" {value = dense<1.000000e+00> : tensor<4x4xf32>}
// CHECK: tfm.linear {{.*}}tfm.calib_rms = dense<(1.000000e+00, 3.000000e+00, {{.*}}, 3.100000e+01, 3.000000e+01, 2.800000e+01, {{.*}}, 0.000000e+00)> : tensor<32xf32>
func.func @residual(%t: tensor<?xi32>) -> tensor<?x4xf32> {
  %emb = tfm.weight "emb" {value = dense<[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0], [32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0], [64.0, 65.0, 66.0, 67.0, 68.0, 69.0, 70.0, 71.0, 72.0, 73.0, 74.0, 75.0, 76.0, 77.0, 78.0, 79.0, 80.0, 81.0, 82.0, 83.0, 84.0, 85.0, 86.0, 87.0, 88.0, 89.0, 90.0, 91.0, 92.0, 93.0, 94.0, 95.0], [96.0, 97.0, 98.0, 99.0, 100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0, 109.0, 110.0, 111.0, 112.0, 113.0, 114.0, 115.0, 116.0, 117.0, 118.0, 119.0, 120.0, 121.0, 122.0, 123.0, 124.0, 125.0, 126.0, 127.0]]> : tensor<4x32xf32>} : tensor<4x32xf32>
  %gain = tfm.weight "gain" {value = dense<[1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06, 1.07, 1.08, 1.09, 1.1, 1.11, 1.12, 1.13, 1.1400000000000001, 1.15, 1.16, 1.17, 1.18, 1.19, 1.2, 1.21, 1.22, 1.23, 1.24, 1.25, 1.26, 1.27, 1.28, 1.29, 1.3, 1.31]> : tensor<32xf32>} : tensor<32xf32>
  %w = tfm.weight "w" {value = dense<[[0.01, 10.0, 0.03, 10.0, 0.05, 10.0, 0.07, 10.0, 0.09, 10.0, 0.11, 10.0, 0.13, 10.0, 0.15, 10.0, 0.17, 10.0, 0.19, 10.0, 0.21, 10.0, 0.23, 10.0, 0.25, 10.0, 0.27, 10.0, 0.29, 10.0, 0.31, 10.0], [0.01, 10.1, 0.03, 10.1, 0.05, 10.1, 0.07, 10.1, 0.09, 10.1, 0.11, 10.1, 0.13, 10.1, 0.15, 10.1, 0.17, 10.1, 0.19, 10.1, 0.21, 10.1, 0.23, 10.1, 0.25, 10.1, 0.27, 10.1, 0.29, 10.1, 0.31, 10.1], [0.01, 10.2, 0.03, 10.2, 0.05, 10.2, 0.07, 10.2, 0.09, 10.2, 0.11, 10.2, 0.13, 10.2, 0.15, 10.2, 0.17, 10.2, 0.19, 10.2, 0.21, 10.2, 0.23, 10.2, 0.25, 10.2, 0.27, 10.2, 0.29, 10.2, 0.31, 10.2], [0.01, 10.3, 0.03, 10.3, 0.05, 10.3, 0.07, 10.3, 0.09, 10.3, 0.11, 10.3, 0.13, 10.3, 0.15, 10.3, 0.17, 10.3, 0.19, 10.3, 0.21, 10.3, 0.23, 10.3, 0.25, 10.3, 0.27, 10.3, 0.29, 10.3, 0.31, 10.3]]> : tensor<4x32xf32>} : tensor<4x32xf32>
  %cls = tfm.weight "cls" {value = dense<1.0> : tensor<4x4xf32>} : tensor<4x4xf32>
  %x = tfm.embedding %emb[%t] : tensor<4x32xf32>, tensor<?xi32> -> tensor<?x32xf32>
  %h = tfm.rms_norm %x, %gain {epsilon = 1.0e-5 : f32} : tensor<?x32xf32>, tensor<32xf32> -> tensor<?x32xf32>
  %y = tfm.linear %h, %w {tfm.calib_rms = dense<[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0]> : tensor<32xf32>} : tensor<?x32xf32>, tensor<4x32xf32> -> tensor<?x4xf32>
  %l = tfm.logits %y, %cls : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  return %l : tensor<?x4xf32>
}

// -----

// Channels that RoPE pairs up keep their order: the q projection's output
// feeds tfm.rope, so only its input (the function argument, which is fixed
// too) could move, and nothing changes.

// CHECK-LABEL: func @fixed
// CHECK: tfm.weight "wq" {value = dense<((0.00999999977, 1.000000e+01, 3.000000e-02, 1.000000e+01, {{.*}}> : tensor<4x32xf32>}
func.func @fixed(%x: tensor<?x32xf32>, %p: tensor<?xi32>) -> tensor<?x4xf32> {
  %w = tfm.weight "wq" {value = dense<[[0.01, 10.0, 0.03, 10.0, 0.05, 10.0, 0.07, 10.0, 0.09, 10.0, 0.11, 10.0, 0.13, 10.0, 0.15, 10.0, 0.17, 10.0, 0.19, 10.0, 0.21, 10.0, 0.23, 10.0, 0.25, 10.0, 0.27, 10.0, 0.29, 10.0, 0.31, 10.0], [0.01, 10.1, 0.03, 10.1, 0.05, 10.1, 0.07, 10.1, 0.09, 10.1, 0.11, 10.1, 0.13, 10.1, 0.15, 10.1, 0.17, 10.1, 0.19, 10.1, 0.21, 10.1, 0.23, 10.1, 0.25, 10.1, 0.27, 10.1, 0.29, 10.1, 0.31, 10.1], [0.01, 10.2, 0.03, 10.2, 0.05, 10.2, 0.07, 10.2, 0.09, 10.2, 0.11, 10.2, 0.13, 10.2, 0.15, 10.2, 0.17, 10.2, 0.19, 10.2, 0.21, 10.2, 0.23, 10.2, 0.25, 10.2, 0.27, 10.2, 0.29, 10.2, 0.31, 10.2], [0.01, 10.3, 0.03, 10.3, 0.05, 10.3, 0.07, 10.3, 0.09, 10.3, 0.11, 10.3, 0.13, 10.3, 0.15, 10.3, 0.17, 10.3, 0.19, 10.3, 0.21, 10.3, 0.23, 10.3, 0.25, 10.3, 0.27, 10.3, 0.29, 10.3, 0.31, 10.3]]> : tensor<4x32xf32>} : tensor<4x32xf32>
  %q = tfm.linear %x, %w : tensor<?x32xf32>, tensor<4x32xf32> -> tensor<?x4xf32>
  %r = tfm.rope %q, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x4xf32>, tensor<?xi32> -> tensor<?x4xf32>
  return %r : tensor<?x4xf32>
}
