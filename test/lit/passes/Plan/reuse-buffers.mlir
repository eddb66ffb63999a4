// RUN: lathe-opt %s --split-input-file --lathe-plan-reuse-buffers | FileCheck %s

// A buffer whose last reader came at least two kernels before a new buffer
// of the same width takes its place; one still read by the kernel that
// writes the new one does not (a product's output is never its input), nor
// one read by the kernel just before it (a backend may fuse the two
// kernels); widths never mix; the returned buffer is never given away.

// CHECK-LABEL: func @chain
// CHECK: %[[A:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: %[[B:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.matmul %[[A]], %{{.*}} -> %[[B]]
// CHECK-NEXT: %[[C:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.matmul %[[B]], %{{.*}} -> %[[C]]
// CHECK-NEXT: plan.matmul %[[C]], %{{.*}} -> %[[A]]
// CHECK-NEXT: plan.matmul %[[A]], %{{.*}} -> %[[B]]
// CHECK-NEXT: %[[W:.*]] = plan.buffer : <16, f32>
// CHECK-NEXT: plan.matmul %[[B]], %{{.*}} -> %[[W]]
// CHECK-NEXT: return %[[W]]
func.func @chain(%w: tensor<8x8xf32>, %w16: tensor<16x8xf32>) -> !plan.buffer<16, f32> {
  %a = plan.buffer : !plan.buffer<8, f32>
  %b = plan.buffer : !plan.buffer<8, f32>
  plan.matmul %a, %w -> %b : !plan.buffer<8, f32>, tensor<8x8xf32>, !plan.buffer<8, f32>
  %c = plan.buffer : !plan.buffer<8, f32>
  plan.matmul %b, %w -> %c : !plan.buffer<8, f32>, tensor<8x8xf32>, !plan.buffer<8, f32>
  %d = plan.buffer : !plan.buffer<8, f32>
  plan.matmul %c, %w -> %d : !plan.buffer<8, f32>, tensor<8x8xf32>, !plan.buffer<8, f32>
  %e = plan.buffer : !plan.buffer<8, f32>
  plan.matmul %d, %w -> %e : !plan.buffer<8, f32>, tensor<8x8xf32>, !plan.buffer<8, f32>
  %f = plan.buffer : !plan.buffer<16, f32>
  plan.matmul %e, %w16 -> %f : !plan.buffer<8, f32>, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %f : !plan.buffer<16, f32>
}

// -----

// Three values live at once need three buffers, and the next kernel a
// fourth (the kernel before it freed two, too recently); the one after
// that reuses the one freed last of those.

// CHECK-LABEL: func @live
// CHECK-COUNT-3: plan.buffer : <8, f32>
// CHECK-NEXT: plan.add %[[X:.*]], %[[Y:.*]] -> %[[Z:.*]] :
// CHECK-NEXT: %[[R:.*]] = plan.buffer : <8, f32>
// CHECK-NEXT: plan.add %[[Z]], %[[Z]] -> %[[R]] :
// CHECK-NEXT: plan.add %[[R]], %[[R]] -> %[[Y]] :
func.func @live() -> !plan.buffer<8, f32> {
  %x = plan.buffer : !plan.buffer<8, f32>
  %y = plan.buffer : !plan.buffer<8, f32>
  %z = plan.buffer : !plan.buffer<8, f32>
  plan.add %x, %y -> %z : !plan.buffer<8, f32>
  %r = plan.buffer : !plan.buffer<8, f32>
  plan.add %z, %z -> %r : !plan.buffer<8, f32>
  %s = plan.buffer : !plan.buffer<8, f32>
  plan.add %r, %r -> %s : !plan.buffer<8, f32>
  return %s : !plan.buffer<8, f32>
}
