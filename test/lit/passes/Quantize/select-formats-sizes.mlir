// RUN: lathe-opt %s --lathe-select-formats="bits=5.75 candidates=mxfp4_e2m1,mxint8" | FileCheck %s --check-prefix=B575
// RUN: lathe-opt %s --lathe-select-formats="bits=6 candidates=mxfp4_e2m1,mxint8" | FileCheck %s --check-prefix=B6

// The budget is an average over parameters, not over tensors: three weights
// of different sizes, big 4x32 (128 parameters), mid 2x32 (64) and small
// 1x32 (32), 224 in all. Candidates: MXFP4, 1 + 16 bytes per 32 values =
// 4.25 bits per weight, and MXINT8, 1 + 32 bytes = 8.25 bits.
//
// Errors, by hand (docs/formats.md, MX): a block whose largest value is 1.0
// gets the scale 2^(floor(log2 1.0) - emax). MXFP4 (E2M1, emax = 2): scale
// 1/4, 1.0 -> 4 (exact), 0.0625 -> 0.25, half of the smallest step 0.5,
// which rounds to even: 0. Each 0.0625 loses all of itself. MXINT8 (emax =
// 0): scale 1, 1.0 -> 64/64, 0.0625 -> 4/64, all exact: no error.
//   big, rows [1, 0.0625 x 31]: squared relative error
//     (31/256) / (1 + 31/256) = 31/287 = 0.1080, error 0.328655.
//   mid and small, rows [1, 0.0625 x 15, 0 x 16]: 15/271 = 0.0554, error
//     0.235267.
// The pass minimises the sum of squared errors; moving a tensor to MXINT8
// removes all of its error and costs 4 more bits per parameter: big 512,
// mid 256, small 128 bits. All in MXFP4: 4.25 x 224 = 952 bits.
//
// bits=5.75: the budget is 5.75 x 224 = 1288 bits, 336 to spend. big (512)
// does not fit. small removes the most error per bit (0.0554 / 128 against
// 0.0554 / 256 for mid) and is upgraded; mid then no longer fits (128 + 256
// = 384 > 336). Average (952 + 128) / 224 = 4.82 <= 5.75.
// Counting tensors instead would allow any one upgrade ((2 x 4.25 + 8.25) / 3
// = 5.58 <= 5.75) and pick big, whose error is largest: (952 + 512) / 224 =
// 6.54 bits per parameter, over the budget.
// B575-LABEL: func @sizes
// B575: tfm.weight "big" {tfm.quant_error = 0.328654{{[0-9]*}} : f32, value = dense_resource<big> : tensor<68xi8>} : tensor<4x32x!tfm.mx<fp4_e2m1>>
// B575: tfm.weight "mid" {tfm.quant_error = 0.235266{{[0-9]*}} : f32, value = dense_resource<mid> : tensor<34xi8>} : tensor<2x32x!tfm.mx<fp4_e2m1>>
// B575: tfm.weight "small" {tfm.quant_error = 0.000000e+00 : f32, value = dense_resource<small> : tensor<33xi8>} : tensor<1x32x!tfm.mx<int8>>
//
// bits=6: 1344 bits, 392 to spend: small (128), then mid (256), 384 in all;
// big still does not fit. Average (952 + 384) / 224 = 5.96 <= 6, though the
// average over tensors, (4.25 + 2 x 8.25) / 3 = 6.92, is above 6. Counting
// tensors would again stop after one upgrade, of big.
// B6-LABEL: func @sizes
// B6: tfm.weight "big" {tfm.quant_error = 0.328654{{[0-9]*}} : f32, value = dense_resource<big> : tensor<68xi8>} : tensor<4x32x!tfm.mx<fp4_e2m1>>
// B6: tfm.weight "mid" {tfm.quant_error = 0.000000e+00 : f32, value = dense_resource<mid> : tensor<66xi8>} : tensor<2x32x!tfm.mx<int8>>
// B6: tfm.weight "small" {tfm.quant_error = 0.000000e+00 : f32, value = dense_resource<small> : tensor<33xi8>} : tensor<1x32x!tfm.mx<int8>>
func.func @sizes(%x: tensor<?x32xf32>) -> (tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x1xf32>) {
  %big = tfm.weight "big" {value = dense<[
      [1.0, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625],
      [1.0, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625],
      [1.0, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625],
      [1.0, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625]]> : tensor<4x32xf32>} : tensor<4x32xf32>
  %mid = tfm.weight "mid" {value = dense<[
      [1.0, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
      [1.0, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x32xf32>} : tensor<2x32xf32>
  %small = tfm.weight "small" {value = dense<[
      [1.0, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<1x32xf32>} : tensor<1x32xf32>
  %big_y = tfm.linear %x, %big : tensor<?x32xf32>, tensor<4x32xf32> -> tensor<?x4xf32>
  %mid_y = tfm.linear %x, %mid : tensor<?x32xf32>, tensor<2x32xf32> -> tensor<?x2xf32>
  %small_y = tfm.linear %x, %small : tensor<?x32xf32>, tensor<1x32xf32> -> tensor<?x1xf32>
  return %big_y, %mid_y, %small_y : tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x1xf32>
}
