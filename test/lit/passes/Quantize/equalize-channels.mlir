// RUN: lathe-opt %s --split-input-file --lathe-equalize-channels="format=int4:group=32" --mlir-print-elementsattrs-with-hex-if-larger=-1 | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s
// RUN: lathe-opt %s --split-input-file --lathe-equalize-channels="format=bfp4:block=32 activations=float" --mlir-print-elementsattrs-with-hex-if-larger=-1 | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s
// Brackets become parentheses before FileCheck, which reads [[ as a variable.

// Channel 3 is an outlier of the kind an exact rescaling makes: its gain is
// 1/32 of the others', its column of w 32 times larger (and so is its
// calibrated input 1/32 of the others'). In the identity, the 16 of row 0
// sets the block's scale and the 0.5s round to zero. The products of
// activation and column magnitude (p = 0.5 or 1.5 in every channel) call for
// the same activation in every channel, 0.5 (rms): exponent -1 for every
// channel, 4 for channel 3. The gain becomes 0.5 throughout, w's columns
// agree (1.0 and +-0.5), and the statistics follow their channels.

// CHECK-LABEL: func @norm_outlier
// CHECK-DAG: tfm.weight "gain" {value = dense<5.000000e-01> : tensor<32xf32>}
// CHECK-DAG: tfm.weight "w" {value = dense<((1.000000e+00, 1.000000e+00, 1.000000e+00, 1.000000e+00, {{.*}}), (5.000000e-01, -5.000000e-01, 5.000000e-01, -5.000000e-01, 5.000000e-01, {{.*}}))> : tensor<2x32xf32>}
// CHECK: tfm.linear {{.*}}tfm.calib_absmax = dense<1.500000e+00> : tensor<32xf32>, tfm.calib_rms = dense<5.000000e-01> : tensor<32xf32>
func.func @norm_outlier(%x: tensor<?x32xf32>) -> tensor<?x2xf32> {
  %g = tfm.weight "gain" {value = dense<[1.0, 1.0, 1.0, 0.03125, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]> : tensor<32xf32>} : tensor<32xf32>
  %w = tfm.weight "w" {value = dense<[[0.5, 0.5, 0.5, 16.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [0.25, -0.25, 0.25, -8.0, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25]]> : tensor<2x32xf32>} : tensor<2x32xf32>
  %h = tfm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x32xf32>, tensor<32xf32> -> tensor<?x32xf32>
  %y = tfm.linear %h, %w {tfm.calib_rms = dense<[1.0, 1.0, 1.0, 0.03125, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]> : tensor<32xf32>, tfm.calib_absmax = dense<[3.0, 3.0, 3.0, 0.09375, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]> : tensor<32xf32>} : tensor<?x32xf32>, tensor<2x32xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// The MLP's hidden channels fold into the rows of the up projection (SwiGLU
// is linear in up) and the columns of the down projection: hidden channel
// 5 is the outlier, and up's row 5 takes its scale as the gain did above.
// The gate cannot be scaled (silu is not linear), so w1's rows stay; the
// norm's two channels are balanced already (p = 1 in both), so every
// candidate there is the identity and the gain stays too.

// CHECK-LABEL: func @mlp
// CHECK-DAG: tfm.weight "ffn_norm" {value = dense<1.000000e+00> : tensor<2xf32>}
// CHECK-DAG: tfm.weight "w1" {value = dense<((1.000000e+00, -1.000000e+00), (-1.000000e+00, 5.000000e-01), {{.*}}> : tensor<32x2xf32>}
// CHECK-DAG: tfm.weight "w3" {value = dense<((2.500000e-01, -1.250000e-01), (2.500000e-01, -1.250000e-01), (2.500000e-01, -1.250000e-01), (2.500000e-01, -1.250000e-01), (2.500000e-01, -1.250000e-01), (2.500000e-01, -1.250000e-01), {{.*}}> : tensor<32x2xf32>}
// CHECK-DAG: tfm.weight "w2" {value = dense<((1.000000e+00, 1.000000e+00, 1.000000e+00, 1.000000e+00, 1.000000e+00, 1.000000e+00, {{.*}}), (5.000000e-01, -5.000000e-01, 5.000000e-01, -5.000000e-01, 5.000000e-01, -5.000000e-01, {{.*}}))> : tensor<2x32xf32>}
// CHECK: tfm.linear {{.*}}tfm.calib_absmax = dense<1.500000e+00> : tensor<32xf32>, tfm.calib_rms = dense<5.000000e-01> : tensor<32xf32>} : tensor<?x32xf32>, tensor<2x32xf32>
func.func @mlp(%x: tensor<?x2xf32>) -> tensor<?x2xf32> {
  %g = tfm.weight "ffn_norm" {value = dense<1.0> : tensor<2xf32>} : tensor<2xf32>
  %w1 = tfm.weight "w1" {value = dense<[[1.0, -1.0], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [1.0, 0.5], [-1.0, 0.5]]> : tensor<32x2xf32>} : tensor<32x2xf32>
  %w3 = tfm.weight "w3" {value = dense<[[0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.015625, -0.0078125], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25], [0.5, -0.25]]> : tensor<32x2xf32>} : tensor<32x2xf32>
  %w2 = tfm.weight "w2" {value = dense<[[0.5, 0.5, 0.5, 0.5, 0.5, 16.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [0.25, -0.25, 0.25, -0.25, 0.25, -8.0, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25]]> : tensor<2x32xf32>} : tensor<2x32xf32>
  %h = tfm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x2xf32>, tensor<2xf32> -> tensor<?x2xf32>
  %gate = tfm.linear %h, %w1 {tfm.calib_rms = dense<1.0> : tensor<2xf32>, tfm.calib_absmax = dense<1.0> : tensor<2xf32>} : tensor<?x2xf32>, tensor<32x2xf32> -> tensor<?x32xf32>
  %up = tfm.linear %h, %w3 {tfm.calib_rms = dense<1.0> : tensor<2xf32>, tfm.calib_absmax = dense<1.0> : tensor<2xf32>} : tensor<?x2xf32>, tensor<32x2xf32> -> tensor<?x32xf32>
  %m = tfm.silu_mul %gate, %up : tensor<?x32xf32>
  %y = tfm.linear %m, %w2 {tfm.calib_rms = dense<[1.0, 1.0, 1.0, 1.0, 1.0, 0.03125, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]> : tensor<32xf32>, tfm.calib_absmax = dense<[3.0, 3.0, 3.0, 3.0, 3.0, 0.09375, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]> : tensor<32xf32>} : tensor<?x32xf32>, tensor<2x32xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// Nothing that cannot be scaled is: a linear reading the function's
// argument (the caller's channels), and a norm whose output feeds the
// classifier, which has no calibration to score a scale with. Neither
// needs statistics.

// CHECK-LABEL: func @fixed
// CHECK-DAG: tfm.weight "w" {value = dense<((5.000000e-01, 5.000000e-01, 5.000000e-01, 1.600000e+01, {{.*}}> : tensor<2x32xf32>}
// CHECK-DAG: tfm.weight "final_norm" {value = dense<(1.000000e+00, 1.000000e+00, 1.000000e+00, 3.125000e-02, {{.*}}> : tensor<32xf32>}
func.func @fixed(%x: tensor<?x32xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>) {
  %w = tfm.weight "w" {value = dense<[[0.5, 0.5, 0.5, 16.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [0.25, -0.25, 0.25, -8.0, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25]]> : tensor<2x32xf32>} : tensor<2x32xf32>
  %y = tfm.linear %x, %w : tensor<?x32xf32>, tensor<2x32xf32> -> tensor<?x2xf32>
  %g = tfm.weight "final_norm" {value = dense<[1.0, 1.0, 1.0, 0.03125, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]> : tensor<32xf32>} : tensor<32xf32>
  %cls = tfm.weight "cls" {value = dense<[[0.5, 0.5, 0.5, 16.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [0.25, -0.25, 0.25, -8.0, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25]]> : tensor<2x32xf32>} : tensor<2x32xf32>
  %h = tfm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x32xf32>, tensor<32xf32> -> tensor<?x32xf32>
  %l = tfm.logits %h, %cls : tensor<?x32xf32>, tensor<2x32xf32> -> tensor<?x2xf32>
  return %y, %l : tensor<?x2xf32>, tensor<?x2xf32>
}
