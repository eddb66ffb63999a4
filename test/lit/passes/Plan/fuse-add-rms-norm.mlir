// RUN: lathe-opt %s --split-input-file --lathe-plan-fuse-add-rms-norm | FileCheck %s

// A residual add followed by the norm of its sum (its gain and output
// buffer may sit between) becomes one add_rms_norm that keeps the sum.

// CHECK-LABEL: func @residual
// CHECK: plan.add_rms_norm %[[A:.*]], %[[B:.*]], %[[G:.*]] -> %[[S:.*]], %[[N:.*]] {epsilon = 9.99999974E-6 : f32}
// CHECK-NOT: plan.add %
// CHECK-NOT: plan.rms_norm
func.func @residual(%a: !plan.buffer<8, f32>, %b: !plan.buffer<8, f32>, %s: !plan.buffer<8, f32>) {
  plan.add %a, %b -> %s : !plan.buffer<8, f32>
  %g = tfm.weight "g" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  %n = plan.buffer : !plan.buffer<8, f32>
  plan.rms_norm %s, %g -> %n {epsilon = 1.0e-5 : f32} : !plan.buffer<8, f32>, tensor<8xf32>, !plan.buffer<8, f32>
  return
}

// -----

// Not fused: the norm reads another buffer, writes the sum or an operand
// of the add, or a kernel runs in between.

// CHECK-LABEL: func @kept
// CHECK-NOT: plan.add_rms_norm
func.func @kept(%a: !plan.buffer<8, f32>, %b: !plan.buffer<8, f32>, %s: !plan.buffer<8, f32>, %n: !plan.buffer<8, f32>) {
  %g = tfm.weight "g" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  plan.add %a, %b -> %s : !plan.buffer<8, f32>
  plan.rms_norm %a, %g -> %n {epsilon = 1.0e-5 : f32} : !plan.buffer<8, f32>, tensor<8xf32>, !plan.buffer<8, f32>
  plan.add %a, %b -> %s : !plan.buffer<8, f32>
  plan.rms_norm %s, %g -> %a {epsilon = 1.0e-5 : f32} : !plan.buffer<8, f32>, tensor<8xf32>, !plan.buffer<8, f32>
  plan.add %a, %b -> %s : !plan.buffer<8, f32>
  plan.silu_mul %a, %b -> %n : !plan.buffer<8, f32>
  plan.rms_norm %s, %g -> %n {epsilon = 1.0e-5 : f32} : !plan.buffer<8, f32>, tensor<8xf32>, !plan.buffer<8, f32>
  return
}
