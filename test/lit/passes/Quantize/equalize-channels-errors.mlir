// RUN: lathe-opt %s --split-input-file --lathe-equalize-channels --verify-diagnostics
// Bad options are reported on the module, one line each.
// RUN: not lathe-opt %s --split-input-file --lathe-equalize-channels="format=bfp5" 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not lathe-opt %s --split-input-file --lathe-equalize-channels="activations=int4" 2>&1 | FileCheck %s --check-prefix=ACTS
// FORMAT: error: lathe-equalize-channels: format 'bfp5': unknown format 'bfp5'
// ACTS: error: lathe-equalize-channels: activations must be int8, bf16 or float, got 'int4'

// A channel that may be scaled needs the calibration statistics of every
// linear that reads it: without them there is nothing to choose scales by.
func.func @uncalibrated(%x: tensor<?x4xf32>) -> tensor<?x2xf32> {
  %g = tfm.weight "gain" {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %w = tfm.weight "w" {value = dense<[[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]]> : tensor<2x4xf32>} : tensor<2x4xf32>
  %h = tfm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  // expected-error @+1 {{'tfm.linear' op has no tfm.calib_rms: lathe-equalize-channels needs calibrated input statistics (lathe-compile calibrates before it runs)}}
  %y = tfm.linear %h, %w : tensor<?x4xf32>, tensor<2x4xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// Statistics of another width than the input's channels.
func.func @wrong_width(%x: tensor<?x4xf32>) -> tensor<?x2xf32> {
  %g = tfm.weight "gain" {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  %w = tfm.weight "w" {value = dense<[[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]]> : tensor<2x4xf32>} : tensor<2x4xf32>
  %h = tfm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  // expected-error @+1 {{'tfm.linear' op expects tfm.calib_absmax to hold 4 f32 values (one per input channel), got 'tensor<3xf32>'}}
  %y = tfm.linear %h, %w {tfm.calib_rms = dense<1.0> : tensor<4xf32>, tfm.calib_absmax = dense<1.0> : tensor<3xf32>} : tensor<?x4xf32>, tensor<2x4xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
