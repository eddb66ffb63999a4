// Brackets become parentheses before FileCheck, which reads [[ as a variable.
// RUN: lathe-opt %s --lathe-reorder-channels="format=bfp4:block=16" | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s --check-prefix=INT8
// RUN: lathe-opt %s --lathe-reorder-channels="format=bfp4:block=16 activations=float" | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s --check-prefix=FLOAT
// RUN: lathe-opt %s --lathe-reorder-channels="format=bfp4:block=16 activations=bf16" | sed -e 's/\[/(/g' -e 's/\]/)/g' | FileCheck %s --check-prefix=FLOAT
// RUN: not lathe-opt %s --lathe-reorder-channels="activations=int4" 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: lathe-reorder-channels: activations must be int8, bf16 or float, got 'int4'

// Weights alike in every column quantize the same in any order, but the
// inputs of the odd channels are 64 times larger. Int8 activations (the
// default) round each 16-channel block of a token with one scale, so with
// the odd channels spread over both blocks every input rounds in steps set
// by a large one: the pass gathers the large channels into the first
// block (the gain and the calibration statistics move with them). With
// float activations no order is better than another, and the identity
// stays; bf16 activations, which round each value on its own, likewise.

// INT8: tfm.weight "gain" {value = dense<(1.000000e+00, 3.000000e+00, 5.000000e+00,
// INT8: tfm.calib_rms = dense<(6.400000e+01, 6.400000e+01,
// FLOAT: tfm.weight "gain" {value = dense<(0.000000e+00, 1.000000e+00, 2.000000e+00,
// FLOAT: tfm.calib_rms = dense<(1.000000e+00, 6.400000e+01, 1.000000e+00,
func.func @activations(%t: tensor<?xi32>) -> tensor<?x4xf32> {
  %emb = tfm.weight "emb" {value = dense<1.0> : tensor<4x32xf32>} : tensor<4x32xf32>
  %gain = tfm.weight "gain" {value = dense<[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0]> : tensor<32xf32>} : tensor<32xf32>
  %w = tfm.weight "w" {value = dense<1.0> : tensor<4x32xf32>} : tensor<4x32xf32>
  %cls = tfm.weight "cls" {value = dense<1.0> : tensor<4x4xf32>} : tensor<4x4xf32>
  %x = tfm.embedding %emb[%t] : tensor<4x32xf32>, tensor<?xi32> -> tensor<?x32xf32>
  %h = tfm.rms_norm %x, %gain {epsilon = 1.0e-5 : f32} : tensor<?x32xf32>, tensor<32xf32> -> tensor<?x32xf32>
  %y = tfm.linear %h, %w {tfm.calib_rms = dense<[1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0]> : tensor<32xf32>} : tensor<?x32xf32>, tensor<4x32xf32> -> tensor<?x4xf32>
  %l = tfm.logits %y, %cls : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  return %l : tensor<?x4xf32>
}
