// shapes-only reads no weight value: each packed weight gets its format's
// type and byte size (the same as packing gives, quantize.mlir), zeros for
// bytes and no error attributes. Weights whose data is absent (a module
// from a config.json alone) pack the same.
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=bfp4:block=32 shapes-only=true" | FileCheck %s --check-prefix=BFP
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int4:group=32 classifier=true classifier-format=int8:group=32 shapes-only=true" | FileCheck %s --check-prefix=CLS
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=fp6_4p2 shapes-only=true" | FileCheck %s --check-prefix=FP6
// RUN: not lathe-opt %s --split-input-file --lathe-quantize="format=bfp4:block=32" 2>&1 | FileCheck %s --check-prefix=READ

// BFP-LABEL: func @linear_weight
// BFP: %[[W:.*]] = tfm.weight "w" {value = dense_resource<w> : tensor<68xi8>} : tensor<2x64x!tfm.bfp<mantissa = 4, block = 32>>
// BFP: tfm.linear %{{.*}}, %[[W]] : tensor<?x64xf32>, tensor<2x64x!tfm.bfp<mantissa = 4, block = 32>> -> tensor<?x2xf32>
// FP6-LABEL: func @linear_weight
// FP6: tfm.weight "w" {value = dense_resource<w> : tensor<104xi8>} : tensor<2x64x!tfm.fp6_4p2<group = 0>>
func.func @linear_weight(%x: tensor<?x64xf32>) -> tensor<?x2xf32> {
  %w = tfm.weight "w" {value = dense<0.25> : tensor<2x64xf32>} : tensor<2x64xf32>
  %y = tfm.linear %x, %w : tensor<?x64xf32>, tensor<2x64xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// No data at all: packing must read the values, shapes-only does not.
// READ: error: 'tfm.weight' op has no data of the expected size
// BFP-LABEL: func @no_data
// BFP: tfm.weight "w2" {value = dense_resource<{{w2.*}}> : tensor<68xi8>} : tensor<2x64x!tfm.bfp<mantissa = 4, block = 32>>
// BFP-NOT: tfm.quant_error
// The classifier gets its own format; the embedding that shares it reads
// the packed classifier.
// CLS-LABEL: func @no_data
// CLS-DAG: %[[C:.*]] = tfm.weight "cls" {value = dense_resource<{{cls.*}}> : tensor<1152xi8>} : tensor<16x64x!tfm.int<bits = 8, group = 32, symmetric = true>>
// CLS-DAG: tfm.weight "w2" {value = dense_resource<{{w2.*}}> : tensor<80xi8>} : tensor<2x64x!tfm.int<bits = 4, group = 32, symmetric = true>>
// CLS: tfm.embedding %[[C]][
func.func @no_data(%x: tensor<?x64xf32>, %ids: tensor<?xi32>) -> (tensor<?x2xf32>, tensor<?x16xf32>, tensor<?x64xf32>) {
  %w = tfm.weight "w2" {value = dense_resource<w2> : tensor<2x64xf32>} : tensor<2x64xf32>
  %c = tfm.weight "cls" {value = dense_resource<cls> : tensor<16x64xf32>} : tensor<16x64xf32>
  %y = tfm.linear %x, %w : tensor<?x64xf32>, tensor<2x64xf32> -> tensor<?x2xf32>
  %l = tfm.logits %x, %c : tensor<?x64xf32>, tensor<16x64xf32> -> tensor<?x16xf32>
  %e = tfm.embedding %c[%ids] : tensor<16x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  return %y, %l, %e : tensor<?x2xf32>, tensor<?x16xf32>, tensor<?x64xf32>
}
