// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=bfp4:block=32" | FileCheck %s --check-prefix=BFP
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int8:group=32 classifier=true" | FileCheck %s --check-prefix=CLS
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int4:group=32 classifier=true classifier-format=int8:group=32" | FileCheck %s --check-prefix=CLS8
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int4:group=32 classifier=true classifier-format=int8:group=32 linears=false" | FileCheck %s --check-prefix=ONLY
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=mxfp6_e3m2" | FileCheck %s --check-prefix=MX
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=fp6_4p2" | FileCheck %s --check-prefix=FP6
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int4:group=32:asym" | FileCheck %s --check-prefix=INT
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=bfp4:block=32" | lathe-opt --split-input-file | FileCheck %s --check-prefix=BFP

// Linear weights are packed: the element type names the format, the value
// holds the packed rows (2 rows x 64 values: bfp4 = 2 blocks of 1 + 16 bytes
// per row = 68 bytes; mxfp6 = 2 x (1 + 24) per row = 100; fp6_4p2 per row =
// 4-byte scale + 32 + 16 bytes = 104; int4 asym = 2 x (4 + 1 + 16) per row = 84).

// BFP-LABEL: func @linear_weight
// BFP: %[[W:.*]] = tfm.weight "w" {tfm.quant_error = 0.000000e+00 : f32, value = dense_resource<w> : tensor<68xi8>} : tensor<2x64x!tfm.bfp<mantissa = 4, block = 32>>
// BFP: tfm.linear %{{.*}}, %[[W]] : tensor<?x64xf32>, tensor<2x64x!tfm.bfp<mantissa = 4, block = 32>> -> tensor<?x2xf32>
// MX-LABEL: func @linear_weight
// MX: tfm.weight "w" {tfm.quant_error = 0.000000e+00 : f32, value = dense_resource<w> : tensor<100xi8>} : tensor<2x64x!tfm.mx<fp6_e3m2>>
// FP6-LABEL: func @linear_weight
// FP6: tfm.weight "w" {tfm.quant_error = 0.000000e+00 : f32, value = dense_resource<w> : tensor<104xi8>} : tensor<2x64x!tfm.fp6_4p2<group = 0>>
// INT-LABEL: func @linear_weight
// INT: tfm.weight "w" {tfm.quant_error = 0.000000e+00 : f32, value = dense_resource<w> : tensor<84xi8>} : tensor<2x64x!tfm.int<bits = 4, group = 32, symmetric = false>>
func.func @linear_weight(%x: tensor<?x64xf32>) -> tensor<?x2xf32> {
  %w = tfm.weight "w" {value = dense<0.25> : tensor<2x64xf32>} : tensor<2x64xf32>
  %y = tfm.linear %x, %w : tensor<?x64xf32>, tensor<2x64xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// Two linears share one weight: one packed copy serves both. The embedding
// table doubles as the classifier and is never packed; a weight used by both
// a linear and another op keeps its float copy for the other op.

// BFP-LABEL: func @sharing
// BFP-DAG: %[[E:.*]] = tfm.weight "emb" {{.*}} : tensor<16x64xf32>
// BFP-DAG: %[[EQ:.*]] = tfm.weight "emb.bfp4:block=32" {{.*}} : tensor<16x64x!tfm.bfp<mantissa = 4, block = 32>>
// BFP-DAG: %[[S:.*]] = tfm.weight "shared" {{.*}} : tensor<64x64x!tfm.bfp<mantissa = 4, block = 32>>
// BFP-NOT: tfm.weight "shared" {{.*}}xf32>
// BFP: tfm.embedding %[[E]]
// BFP: tfm.linear %{{.*}}, %[[S]]
// BFP: tfm.linear %{{.*}}, %[[S]]
// BFP: tfm.linear %{{.*}}, %[[EQ]]
// BFP: tfm.logits %{{.*}}, %[[E]]
func.func @sharing(%t: tensor<?xi32>) -> tensor<?x16xf32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x64xf32>} : tensor<16x64xf32>
  %w = tfm.weight "shared" {value = dense<1.0> : tensor<64x64xbf16>} : tensor<64x64xbf16>
  %x = tfm.embedding %e[%t] : tensor<16x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %a = tfm.linear %x, %w : tensor<?x64xf32>, tensor<64x64xbf16> -> tensor<?x64xf32>
  %b = tfm.linear %a, %w : tensor<?x64xf32>, tensor<64x64xbf16> -> tensor<?x64xf32>
  %c = tfm.linear %b, %e : tensor<?x64xf32>, tensor<16x64xf32> -> tensor<?x16xf32>
  %l = tfm.logits %b, %e : tensor<?x64xf32>, tensor<16x64xf32> -> tensor<?x16xf32>
  return %l : tensor<?x16xf32>
}

// -----

// With classifier=true the classifier is packed too, and the embedding
// lookup that shares it reads the same packed table.

// CLS-LABEL: func @classifier
// CLS: %[[E:.*]] = tfm.weight "emb" {{.*}} : tensor<16x64x!tfm.int<bits = 8, group = 32, symmetric = true>>
// CLS-NOT: tfm.weight "emb"
// CLS: tfm.embedding %[[E]]
// CLS: tfm.logits %{{.*}}, %[[E]]
func.func @classifier(%t: tensor<?xi32>) -> tensor<?x16xf32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x64xf32>} : tensor<16x64xf32>
  %x = tfm.embedding %e[%t] : tensor<16x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %l = tfm.logits %x, %e : tensor<?x64xf32>, tensor<16x64xf32> -> tensor<?x16xf32>
  return %l : tensor<?x16xf32>
}

// -----

// classifier-format gives the classifier a format of its own (a 4-bit model
// keeps an 8-bit classifier); linears=false packs only the classifier.

// CLS8-LABEL: func @own_format
// CLS8: tfm.weight "emb" {{.*}} : tensor<16x64x!tfm.int<bits = 8, group = 32, symmetric = true>>
// CLS8: tfm.weight "w" {{.*}} : tensor<64x64x!tfm.int<bits = 4, group = 32, symmetric = true>>
// ONLY-LABEL: func @own_format
// ONLY: tfm.weight "emb" {{.*}} : tensor<16x64x!tfm.int<bits = 8, group = 32, symmetric = true>>
// ONLY: tfm.weight "w" {{.*}} : tensor<64x64xf32>
func.func @own_format(%t: tensor<?xi32>) -> tensor<?x16xf32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x64xf32>} : tensor<16x64xf32>
  %w = tfm.weight "w" {value = dense<0.25> : tensor<64x64xf32>} : tensor<64x64xf32>
  %x = tfm.embedding %e[%t] : tensor<16x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %y = tfm.linear %x, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %l = tfm.logits %y, %e : tensor<?x64xf32>, tensor<16x64xf32> -> tensor<?x16xf32>
  return %l : tensor<?x16xf32>
}
