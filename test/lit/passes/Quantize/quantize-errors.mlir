// A bad format is reported on the module; a weight the format cannot hold
// (NaN in a format without NaN) on the weight, naming the row.
// RUN: not lathe-opt %s --lathe-quantize="format=bfp5" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: not lathe-opt %s --lathe-quantize="format=int4:group=48" 2>&1 | FileCheck %s --check-prefix=GROUP
// RUN: not lathe-opt %s --lathe-quantize="format=int8" 2>&1 | FileCheck %s --check-prefix=NAN
// RUN: not lathe-opt %s --lathe-quantize="format=int8 classifier=true classifier-format=int3" 2>&1 | FileCheck %s --check-prefix=CLSFMT

// UNKNOWN: error: lathe-quantize: format 'bfp5': unknown format 'bfp5'
// GROUP: error: lathe-quantize: format 'int4:group=48': {{.*}}group=48
// CLSFMT: error: lathe-quantize: classifier-format: format 'int3': unknown format 'int3'
// NAN: quantize-errors.mlir:14:8: error: 'tfm.weight' op cannot be quantized to int8:group=128: row 1:

func.func @f(%x: tensor<?x32xf32>) -> tensor<?x2xf32> {
  %w = tfm.weight "w" {value = dense<[[1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0],
    [1.0, 0x7FC00000, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]]> : tensor<2x32xf32>} : tensor<2x32xf32>
  %y = tfm.linear %x, %w : tensor<?x32xf32>, tensor<2x32xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
