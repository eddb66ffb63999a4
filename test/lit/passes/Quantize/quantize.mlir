// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=bfp4:block=32" | FileCheck %s --check-prefix=BFP
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int8:group=32 classifier=true" | FileCheck %s --check-prefix=CLS
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int4:group=32 classifier=true classifier-format=int8:group=32" | FileCheck %s --check-prefix=CLS8
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int4:group=32 classifier=true classifier-format=int8:group=32 linears=false" | FileCheck %s --check-prefix=ONLY
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=mxfp6_e3m2" | FileCheck %s --check-prefix=MX
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=fp6_4p2" | FileCheck %s --check-prefix=FP6
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int4:group=32:asym" | FileCheck %s --check-prefix=INT
// RUN: lathe-opt %s --split-input-file --lathe-quantize="format=int8:group=32" | FileCheck %s --check-prefix=INT8
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

// -----

// Varied rows, so that scales, rounding and packing all show in the bytes.
// Row 0 is x_k = (k - 12) / 10, row 1 is x_k = ((7k mod 32) - 10) / 16, k =
// 0..31: one group of 32 per row. The bytes below follow the definition in
// docs/formats.md ("INT8 / INT4 group-wise"), worked out in float64 with
// float32 rounding of the stored scale:
//
// int8:group=32 (symmetric): s = float32(max|x| / 127), q = round(x / s).
//   row 0: max|x| = 1.9, s = 0.014960630 = 0x3C751D6E (LE 6E 1D 75 3C);
//          q_k = round((k - 12) * 127 / 19) = -80 -74 -67 -60 -53 -47 -40 -33
//          -27 -20 -13 -7 0 7 13 20 27 33 40 47 53 60 67 74 80 87 94 100 107
//          114 120 127 (one two's-complement byte each: B0 B6 BD C4 ...).
//   row 1: max|x| = 1.3125, s = 0.010334645 = 0x3C2952A5 (LE A5 52 29 3C);
//          q_k = round(m_k * 127 / 21), m_k = (7k mod 32) - 10 = -10 -3 4 11
//          18 -7 0 7 14 21 ...: -60 -18 24 67 109 -42 0 42 85 127 -24 18 60
//          103 -48 -6 36 79 121 -30 12 54 97 -54 -12 30 73 115 -36 6 48 91.
//   No x / s lies near a tie (fractions are multiples of 1/19 and 1/21), so
//   float32 rounding of s cannot move a code. Error sqrt(sum (x - q s)^2 /
//   sum x^2) = 0.004380056.
// int4:group=32:asym: lo = min(x, 0), hi = max(x, 0), s = float32((hi - lo)
//   / 15), z = round(-lo / s), q = round(x / s) + z, two codes per byte, low
//   nibble first.
//   row 0: s = 3.1 / 15 = 0.20666666 = 0x3E53A06D (LE 6D A0 53 3E), z =
//          round(1.2 / s) = round(5.81) = 6; q_k = round((k - 12) * 15 / 31)
//          + 6 = 0 1 1 2 2 3 3 4 4 5 5 6 6 6 7 7 8 8 9 9 10 10 11 11 12 12 13
//          13 14 14 15 15 -> bytes 10 21 32 43 54 65 66 77 88 99 AA BB CC DD
//          EE FF.
//   row 1: s = 1.9375 / 15 = 0.12916666 = 0x3E044444 (LE 44 44 04 3E), z =
//          round(0.625 / s) = round(4.84) = 5; q_k = round(m_k * 15 / 31) + 5
//          = 0 4 7 10 14 2 5 8 12 15 3 6 10 13 1 5 8 11 15 3 6 9 13 1 4 7 11
//          14 2 5 9 12 -> bytes 40 A7 2E 85 FC 63 DA 51 B8 3F 96 1D 74 EB 52
//          C9.
//   Error 0.05833663.
// The resource blob starts with its alignment (a 4-byte field), then the
// packed rows.

// INT8-LABEL: func @varied_rows
// INT8: tfm.weight "varied" {tfm.quant_error = 0.00438005{{[0-9]*}} : f32, value = dense_resource<varied> : tensor<72xi8>} : tensor<2x32x!tfm.int<bits = 8, group = 32, symmetric = true>>
// INT8: varied: "0x{{([0-9A-F]{8})}}6E1D753C
// INT8-SAME: B0B6BDC4CBD1D8DFE5ECF3F900070D141B21282F353C434A50575E646B72787F
// INT8-SAME: A552293C
// INT8-SAME: C4EE18436DD6002A557FE8123C67D0FA244F79E20C3661CAF41E4973DC06305B"
// INT-LABEL: func @varied_rows
// INT: tfm.weight "varied" {tfm.quant_error = 0.0583366{{[0-9]*}} : f32, value = dense_resource<varied> : tensor<42xi8>} : tensor<2x32x!tfm.int<bits = 4, group = 32, symmetric = false>>
// INT: varied: "0x{{([0-9A-F]{8})}}6DA0533E06
// INT-SAME: 10213243546566778899AABBCCDDEEFF
// INT-SAME: 4444043E05
// INT-SAME: 40A72E85FC63DA51B83F961D74EB52C9"
func.func @varied_rows(%x: tensor<?x32xf32>) -> tensor<?x2xf32> {
  %w = tfm.weight "varied" {value = dense<[
      [-1.2, -1.1, -1.0, -0.9, -0.8, -0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9],
      [-0.625, -0.1875, 0.25, 0.6875, 1.125, -0.4375, 0.0, 0.4375, 0.875, 1.3125, -0.25, 0.1875, 0.625, 1.0625, -0.5, -0.0625, 0.375, 0.8125, 1.25, -0.3125, 0.125, 0.5625, 1.0, -0.5625, -0.125, 0.3125, 0.75, 1.1875, -0.375, 0.0625, 0.5, 0.9375]]> : tensor<2x32xf32>} : tensor<2x32xf32>
  %y = tfm.linear %x, %w : tensor<?x32xf32>, tensor<2x32xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
