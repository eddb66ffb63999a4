// RUN: lathe-opt %s --split-input-file --verify-diagnostics
// RUN: not lathe-opt %s --split-input-file --lathe-hls-schedule="ii=0" 2>&1 | FileCheck %s --check-prefix=II
// RUN: not lathe-opt %s --split-input-file --lathe-hls-schedule="unroll=0" 2>&1 | FileCheck %s --check-prefix=UNROLL
// RUN: not lathe-opt %s --split-input-file --lathe-hls-schedule 2>&1 | FileCheck %s --check-prefix=STEP
// II: error: lathe-hls-schedule: ii=0: expects at least 1
// UNROLL: error: lathe-hls-schedule: unroll=0: expects at least 1
// A function that is no decode step (the last case):
// STEP: error: lathe-hls-schedule: expects a decode step: attention over a KV cache and a plan.logits

// The attributes the pass sets, checked wherever they come from.

!b8 = !plan.buffer<8, f32>
func.func @unroll_divides_rows(%x: !b8, %y: !plan.buffer<12, f32>) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<12x8xf32>} : tensor<12x8xf32>
  // expected-error @+1 {{'plan.hls' unrolls 8 rows at a time, which does not divide the 12 rows of a weight}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 8>} : !b8, tensor<12x8xf32>, !plan.buffer<12, f32>
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @ii_at_least_one(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{#plan.hls_loop: ii = 0: expects at least 1}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 0, unroll = 1>} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @only_on_products(%x: !b8, %y: !b8) {
  // expected-error @+1 {{'plan.hls' belongs on a product (plan.matmul, plan.matmuls, plan.logits)}}
  plan.add %x, %x -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>} : !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @a_loop_attribute(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls' expects a #plan.hls_loop, got 4 : i64}}
  plan.matmul %x, %w -> %y {plan.hls = 4} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

// expected-error @+1 {{#plan.hls_interface: unknown port 'scales' (expected weights, tables, cache or logits)}}
func.func @known_ports() attributes {plan.hls_interfaces = [#plan.hls_interface<"scales", bundle = "gmem0", depth = 4>]} {
  return
}

// -----

// expected-error @+1 {{'plan.hls_interfaces' has port 'weights' twice}}
func.func @each_port_once() attributes {plan.hls_interfaces = [#plan.hls_interface<"weights", bundle = "gmem0", depth = 4>, #plan.hls_interface<"weights", bundle = "gmem1", depth = 4>]} {
  return
}

// -----

// expected-error @+1 {{#plan.hls_interface: bundle 'gmem 0' is not a name (letters, digits, '_')}}
func.func @bundle_names() attributes {plan.hls_interfaces = [#plan.hls_interface<"cache", bundle = "gmem 0", depth = 4>]} {
  return
}

// -----

// expected-error @+1 {{#plan.hls_interface: depth = 0: expects at least 1}}
func.func @depths() attributes {plan.hls_interfaces = [#plan.hls_interface<"logits", bundle = "gmem3", depth = 0>]} {
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @interfaces_on_functions(%x: !b8, %y: !b8) {
  // expected-error @+1 {{'plan.hls_interfaces' belongs on the step's function}}
  plan.add %x, %x -> %y {plan.hls_interfaces = []} : !b8
  return
}

// -----

func.func @no_step() {
  return
}
