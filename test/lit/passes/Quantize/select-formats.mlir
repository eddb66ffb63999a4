// RUN: lathe-opt %s --split-input-file --lathe-select-formats="bits=6.25 candidates=mxfp4_e2m1,mxint8" | FileCheck %s
// RUN: lathe-opt %s --split-input-file --lathe-select-formats="bits=100 candidates=mxfp4_e2m1,mxint8" | FileCheck %s --check-prefix=RICH
// RUN: not lathe-opt %s --split-input-file --lathe-select-formats="bits=4 candidates=mxfp4_e2m1,mxint8" 2>&1 | FileCheck %s --check-prefix=POOR
// RUN: not lathe-opt %s --split-input-file --lathe-select-formats="bits=5 candidates=mxfp4_e2m1,fp7" 2>&1 | FileCheck %s --check-prefix=BADFMT
// RUN: not lathe-opt %s --split-input-file --lathe-select-formats="candidates=mxint8" 2>&1 | FileCheck %s --check-prefix=NOBITS

// Two weights of 2x64: "rough" loses a lot in MXFP4 (4.25 bits/weight),
// "flat" (all equal) none at all. A budget of 6.25 bits pays for one MXINT8
// tensor (8.25 bits): the upgrade goes where it removes error, and each
// packed weight records its errors.

// CHECK-LABEL: func @budget
// CHECK-DAG: tfm.weight "rough" {tfm.quant_error = {{.*}} : f32, value = dense_resource<rough> : tensor<132xi8>} : tensor<2x64x!tfm.mx<int8>>
// CHECK-DAG: tfm.weight "flat" {tfm.quant_error = 0.000000e+00 : f32, value = dense_resource<flat> : tensor<68xi8>} : tensor<2x64x!tfm.mx<fp4_e2m1>>
// RICH-LABEL: func @budget
// RICH-DAG: tfm.weight "rough" {{.*}} : tensor<2x64x!tfm.mx<int8>>
// RICH-DAG: tfm.weight "flat" {{.*}} : tensor<2x64x!tfm.mx<fp4_e2m1>>
// POOR: error: lathe-select-formats: a budget of 4 bits per weight is impossible: the cheapest candidates already need 4.250 bits per weight
// BADFMT: error: lathe-select-formats: format 'fp7': unknown format 'fp7'
// NOBITS: error: lathe-select-formats: bits must be a positive budget in bits per weight, got 0
func.func @budget(%x: tensor<?x64xf32>) -> tensor<?x2xf32> {
  %r = tfm.weight "rough" {value = dense<[[0.0, 1.983, -0.767, -3.703, 2.471, 0.798, -1.4, -1.854, 3.437, 1.984, -0.961, -0.298, 2.999, -0.435, -4.859, 0.359, 1.759, -1.757, -2.913, 3.867, 0.529, -1.819, -0.884, 3.942, 0.203, -0.996, 0.432, 2.821, -1.833, -4.112, 0.67, 1.299, -2.513, -1.735, 4.747, 0.189, -1.996, 0.204, 3.922, -1.604, -0.898, 1.104, 2.267, -2.988, -2.816, 0.892, 0.667, -2.934, -0.325, 4.994, -0.176, -1.907, 1.265, 3.379, -3.197, -0.68, 1.629, 1.41, -3.743, -1.145, 0.995, -0.055, -2.963, 1.128], [0.841, 0.855, -2.855, -0.729, 4.993, -0.075, -1.958, 0.982, 3.579, -2.79, -0.751, 1.503, 1.672, -3.581, -1.633, 0.979, 0.149, -2.995, 0.732, 4.757, -0.428, -1.682, 1.935, 2.699, -4.094, -0.464, 1.877, 0.666, -3.982, 0.173, 0.987, -0.578, -2.737, 2.095, 3.886, -0.724, -1.181, 2.629, 1.459, -4.852, -0.115, 2.0, -0.429, -3.852, 1.955, 0.862, -1.227, -2.113, 3.179, 2.497, -0.923, -0.523, 2.973, 0.025, -4.962, 0.25, 1.856, -1.466, -3.209, 3.477, 0.623, -1.712, -1.207, 3.839]]> : tensor<2x64xf32>} : tensor<2x64xf32>
  %f = tfm.weight "flat" {value = dense<0.5> : tensor<2x64xf32>} : tensor<2x64xf32>
  %a = tfm.linear %x, %r : tensor<?x64xf32>, tensor<2x64xf32> -> tensor<?x2xf32>
  %b = tfm.linear %x, %f : tensor<?x64xf32>, tensor<2x64xf32> -> tensor<?x2xf32>
  %s = tfm.add %a, %b : tensor<?x2xf32>
  return %s : tensor<?x2xf32>
}
