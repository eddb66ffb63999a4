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

// The HLS kernels multiply float or int8 inputs, not bf16.
!b8 = !plan.buffer<8, f32>
func.func @no_bf16_activations(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls' schedules products of float or int8 activations; this one asks for bf16 (compile with --activations=float)}}
  plan.matmul %x, %w -> %y {activations = #plan.activations<bf16>, plan.hls = #plan.hls_loop<ii = 1, unroll = 1>} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

// Nor does its attention take bf16 queries.
!b8 = !plan.buffer<8, f32>
func.func @no_bf16_queries(%q: !b8, %k: !b8, %o: !b8, %p: tensor<?xi32>,
                           %kv: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>) {
  // expected-error @+1 {{'plan.hls' schedules attention of float queries; this one asks for bf16 (compile with --activations=float)}}
  plan.attention %q, %k, %k, %p, %kv -> %o {layer = 0 : i64, heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64, activations = #plan.activations<bf16>, plan.hls = #plan.hls_loop<ii = 1, unroll = 1>} : !b8, !b8, !b8, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>, !b8
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
func.func @unroll_only_on_products(%x: !b8, %y: !b8) {
  // expected-error @+1 {{'plan.hls' unrolls 2 rows at a time, but only a product has rows to unroll (expected unroll = 1)}}
  plan.add %x, %x -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 2>} : !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @only_on_kernels() {
  // expected-error @+1 {{'plan.hls' belongs on a kernel (a product, plan.embedding, plan.rms_norm, plan.add_rms_norm, plan.rope, plan.attention, plan.silu_mul, plan.bias_add, plan.add)}}
  %y = plan.buffer {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>} : !b8
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

// Array partitions: the attribute's own rules.

!b8 = !plan.buffer<8, f32>
func.func @complete_takes_no_factor(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{#plan.hls_array_partition: a complete partition takes no factor (one bank per element), got factor = 4}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, factor = 4, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @cyclic_takes_a_factor(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{#plan.hls_array_partition: a cyclic partition expects factor = 2 or more banks, got 0}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"rows", cyclic, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @block_factor_above_one(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{#plan.hls_array_partition: a block partition expects factor = 2 or more banks, got 1}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"rows", block, factor = 1, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @dims_from_one(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{#plan.hls_array_partition: dim = 0: expects a dimension from 1}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 0>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @array_names(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{#plan.hls_array_partition: array 'rows[0]' is not a name (letters, digits, '_')}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"rows[0]", complete, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @known_kinds(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+2 {{expected ::lathe::kplan::HlsPartitionKind to be one of: complete, cyclic, block}}
  // expected-error @+1 {{failed to parse Plan_HlsArrayPartitionAttr parameter 'kind'}}
  plan.matmul %x, %w -> %y {plan.hls_partitions = [#plan.hls_array_partition<"rows", cyclc, factor = 2, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

// Array partitions on a product: its arrays, each once, along the
// dimension its parallel loops read, in banks that match them.

!b8 = !plan.buffer<8, f32>
func.func @partition_rows_by_unroll(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls_partitions' splits 'rows' into 8 banks, which does not divide the 4 rows the product computes at once (#plan.hls_loop)}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"rows", cyclic, factor = 8, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @partition_needs_an_unroll(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls_partitions' splits 'rows' into 2 banks, which does not divide the 1 rows the product computes at once (#plan.hls_loop)}}
  plan.matmul %x, %w -> %y {plan.hls_partitions = [#plan.hls_array_partition<"rows", block, factor = 2, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @float_products_have_rows(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls_partitions': a product with float activations has no local array 'codes' (expected 'rows')}}
  plan.matmul %x, %w -> %y {plan.hls_partitions = [#plan.hls_array_partition<"codes", cyclic, factor = 32, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
!w = tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>
func.func @int8_products_have_codes(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<1> : tensor<288xi8>} : !w
  // expected-error @+1 {{'plan.hls_partitions': a product with int8 activations has no local array 'rows' (expected 'codes')}}
  plan.matmul %x, %w -> %y {activations = #plan.activations<int8>, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 1>]} : !b8, !w, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
!w = tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>
func.func @codes_factor_divides_codes(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<1> : tensor<288xi8>} : !w
  // expected-error @+1 {{'plan.hls_partitions' splits 'codes' into 12 banks, which does not divide its 32 codes}}
  plan.matmul %x, %w -> %y {activations = #plan.activations<int8>, plan.hls_partitions = [#plan.hls_array_partition<"codes", cyclic, factor = 12, dim = 1>]} : !b8, !w, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @partition_each_array_once(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls_partitions' partitions 'rows' twice}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 1>, #plan.hls_array_partition<"rows", cyclic, factor = 2, dim = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @partition_the_parallel_dimension(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls_partitions': 'rows' is read in parallel along dimension 1, not 2}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 2>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @partitions_on_products(%x: !b8, %y: !b8) {
  // expected-error @+1 {{'plan.hls_partitions' belongs on a product (plan.matmul, plan.matmuls, plan.logits)}}
  plan.add %x, %x -> %y {plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 1>]} : !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @partitions_are_partitions(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls_partitions' expects an array of #plan.hls_array_partition, got #plan.hls_loop<ii = 1, unroll = 1>}}
  plan.matmul %x, %w -> %y {plan.hls_partitions = [#plan.hls_loop<ii = 1, unroll = 1>]} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

// Dataflow: on float products of two row groups or more.

!b8 = !plan.buffer<8, f32>
func.func @dataflow_needs_two_row_groups(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls_dataflow': a weight of 8 rows at 8 at a time is one row group, nothing to overlap}}
  plan.matmul %x, %w -> %y {plan.hls = #plan.hls_loop<ii = 1, unroll = 8>, plan.hls_dataflow = #plan.hls_dataflow} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
!w = tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>
func.func @dataflow_needs_float_activations(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<1> : tensor<288xi8>} : !w
  // expected-error @+1 {{'plan.hls_dataflow' needs float activations: the int8 product has no decode stage to overlap}}
  plan.matmul %x, %w -> %y {activations = #plan.activations<int8>, plan.hls_dataflow = #plan.hls_dataflow} : !b8, !w, !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @dataflow_on_products(%x: !b8, %y: !b8) {
  // expected-error @+1 {{'plan.hls_dataflow' belongs on a product (plan.matmul, plan.matmuls, plan.logits)}}
  plan.add %x, %x -> %y {plan.hls_dataflow = #plan.hls_dataflow} : !b8
  return
}

// -----

!b8 = !plan.buffer<8, f32>
func.func @dataflow_attribute(%x: !b8, %y: !b8) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.hls_dataflow' expects a #plan.hls_dataflow, got true}}
  plan.matmul %x, %w -> %y {plan.hls_dataflow = true} : !b8, tensor<8x8xf32>, !b8
  return
}

// -----

func.func @no_step() {
  return
}
