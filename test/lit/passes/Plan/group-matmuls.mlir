// RUN: lathe-opt %s --split-input-file --lathe-plan-group-matmuls | FileCheck %s

// Products of one input with only constants and allocations between them
// become one plan.matmuls at the last of them.

// CHECK-LABEL: func @qkv
// CHECK: %[[Q:.*]] = plan.buffer
// CHECK: %[[K:.*]] = plan.buffer
// CHECK: %[[V:.*]] = plan.buffer
// CHECK-NEXT: plan.matmuls %[[H:.*]], [%[[WQ:.*]], %[[WK:.*]], %[[WV:.*]]] -> [%[[Q]], %[[K]], %[[V]]]
// CHECK-NOT: plan.matmul
func.func @qkv(%h: !plan.buffer<8, f32>) {
  %wq = tfm.weight "wq" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  %q = plan.buffer : !plan.buffer<8, f32>
  plan.matmul %h, %wq -> %q : !plan.buffer<8, f32>, tensor<8x8xf32>, !plan.buffer<8, f32>
  %wk = tfm.weight "wk" {value = dense<0.5> : tensor<4x8xf32>} : tensor<4x8xf32>
  %k = plan.buffer : !plan.buffer<4, f32>
  plan.matmul %h, %wk -> %k : !plan.buffer<8, f32>, tensor<4x8xf32>, !plan.buffer<4, f32>
  %wv = tfm.weight "wv" {value = dense<0.5> : tensor<4x8xf32>} : tensor<4x8xf32>
  %v = plan.buffer : !plan.buffer<4, f32>
  plan.matmul %h, %wv -> %v : !plan.buffer<8, f32>, tensor<4x8xf32>, !plan.buffer<4, f32>
  return
}

// -----

// Not grouped: another input, another precision, a kernel in between, or
// two products writing one buffer.

// CHECK-LABEL: func @apart
// CHECK-NOT: plan.matmuls
// CHECK-COUNT-7: plan.matmul
// CHECK-NOT: plan.matmuls
func.func @apart(%a: !plan.buffer<8, f32>, %b: !plan.buffer<8, f32>, %c: !plan.buffer<8, f32>) {
  %w = tfm.weight "w" {value = dense<0> : tensor<288xi8>} : tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>
  plan.matmul %a, %w -> %b : !plan.buffer<8, f32>, tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>, !plan.buffer<8, f32>
  plan.matmul %b, %w -> %c : !plan.buffer<8, f32>, tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>, !plan.buffer<8, f32>
  plan.matmul %a, %w -> %b {activations = #plan.activations<int8>} : !plan.buffer<8, f32>, tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>, !plan.buffer<8, f32>
  plan.matmul %a, %w -> %c : !plan.buffer<8, f32>, tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>, !plan.buffer<8, f32>
  plan.add %a, %a -> %b : !plan.buffer<8, f32>
  plan.matmul %a, %w -> %c : !plan.buffer<8, f32>, tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>, !plan.buffer<8, f32>
  plan.matmul %c, %w -> %a : !plan.buffer<8, f32>, tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>, !plan.buffer<8, f32>
  plan.matmul %c, %w -> %a : !plan.buffer<8, f32>, tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>, !plan.buffer<8, f32>
  return
}
