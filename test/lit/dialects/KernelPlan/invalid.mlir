// RUN: lathe-opt %s --split-input-file --verify-diagnostics

func.func @matmul_width(%x: !plan.buffer<8, f32>, %y: !plan.buffer<4, f32>) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<4x6xf32>} : tensor<4x6xf32>
  // expected-error @+1 {{'plan.matmul' op input width 8 differs from the weight's 6 columns}}
  plan.matmul %x, %w -> %y : !plan.buffer<8, f32>, tensor<4x6xf32>, !plan.buffer<4, f32>
  return
}

// -----

func.func @matmul_out(%x: !plan.buffer<8, f32>, %y: !plan.buffer<5, f32>) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<4x8xf32>} : tensor<4x8xf32>
  // expected-error @+1 {{'plan.matmul' op output width 5 differs from the weight's 4 rows}}
  plan.matmul %x, %w -> %y : !plan.buffer<8, f32>, tensor<4x8xf32>, !plan.buffer<5, f32>
  return
}

// -----

func.func @matmul_alias(%x: !plan.buffer<8, f32>) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.matmul' op output buffer is also the input}}
  plan.matmul %x, %w -> %x : !plan.buffer<8, f32>, tensor<8x8xf32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @int8_float_weight(%x: !plan.buffer<8, f32>, %y: !plan.buffer<8, f32>) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.matmul' op asks for int8 activations, but its weight is 'f32', not a packed format with integer codes}}
  plan.matmul %x, %w -> %y {activations = #plan.activations<int8>} : !plan.buffer<8, f32>, tensor<8x8xf32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @int8_fp6_weight(%x: !plan.buffer<32, f32>, %y: !plan.buffer<32, f32>) {
  %w = tfm.weight "w" {value = dense<0> : tensor<800xi8>} : tensor<32x32x!tfm.mx<fp6_e3m2>>
  // expected-error @+1 {{'plan.matmul' op asks for int8 activations, but its weight is '!tfm.mx<fp6_e3m2>', not a packed format with integer codes}}
  plan.matmul %x, %w -> %y {activations = #plan.activations<int8>} : !plan.buffer<32, f32>, tensor<32x32x!tfm.mx<fp6_e3m2>>, !plan.buffer<32, f32>
  return
}

// -----

func.func @matmuls_one(%x: !plan.buffer<8, f32>, %y: !plan.buffer<8, f32>) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.matmuls' op expects as many outputs as weights, at least two; got 1 weights and 1 outputs}}
  plan.matmuls %x, [%w] -> [%y] : !plan.buffer<8, f32>, [tensor<8x8xf32>], [!plan.buffer<8, f32>]
  return
}

// -----

func.func @matmuls_twice(%x: !plan.buffer<8, f32>, %y: !plan.buffer<8, f32>) {
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  // expected-error @+1 {{'plan.matmuls' op writes one buffer twice}}
  plan.matmuls %x, [%w, %w] -> [%y, %y] : !plan.buffer<8, f32>, [tensor<8x8xf32>, tensor<8x8xf32>], [!plan.buffer<8, f32>, !plan.buffer<8, f32>]
  return
}

// -----

func.func @rope_head(%x: !plan.buffer<8, f32>, %y: !plan.buffer<8, f32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'plan.rope' op head_dim 3 does not split width 8 into even heads}}
  plan.rope %x at %p -> %y {head_dim = 3 : i64, theta = 1.0e4 : f32, layout = #tfm.rope_layout<interleaved>} : !plan.buffer<8, f32>, tensor<?xi32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @norm_gain(%x: !plan.buffer<8, f32>, %y: !plan.buffer<8, f32>) {
  %g = tfm.weight "g" {value = dense<1.0> : tensor<6xf32>} : tensor<6xf32>
  // expected-error @+1 {{'plan.rms_norm' op expects a gain of a divisor of 8 elements, got 'tensor<6xf32>'}}
  plan.rms_norm %x, %g -> %y {epsilon = 1.0e-5 : f32} : !plan.buffer<8, f32>, tensor<6xf32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @bias_width(%x: !plan.buffer<8, f32>, %y: !plan.buffer<8, f32>) {
  %b = tfm.weight "b" {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  // expected-error @+1 {{'plan.bias_add' op expects a bias of 8 elements, got 'tensor<4xf32>'}}
  plan.bias_add %x, %b -> %y : !plan.buffer<8, f32>, tensor<4xf32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @rope_order(%x: !plan.buffer<8, f32>, %y: !plan.buffer<8, f32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'plan.rope' op expects each group of pair_order to be a permutation of the pairs}}
  plan.rope %x at %p -> %y {head_dim = 4 : i64, theta = 1.0e4 : f32, layout = #tfm.rope_layout<interleaved>, pair_order = array<i32: 0, 0>} : !plan.buffer<8, f32>, tensor<?xi32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @rope_scaling(%x: !plan.buffer<8, f32>, %y: !plan.buffer<8, f32>, %p: tensor<?xi32>) {
  // expected-error @+1 {{'plan.rope' op expects a scaling factor of at least 1}}
  plan.rope %x at %p -> %y {head_dim = 4 : i64, theta = 1.0e4 : f32, layout = #tfm.rope_layout<interleaved>, scaling_factor = 0.5 : f32, low_freq_factor = 1.0 : f32, high_freq_factor = 4.0 : f32, original_context = 32 : i64} : !plan.buffer<8, f32>, tensor<?xi32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @attention_heads(%q: !plan.buffer<8, f32>, %k: !plan.buffer<8, f32>, %o: !plan.buffer<8, f32>, %p: tensor<?xi32>,
                           %kv: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>) {
  // expected-error @+1 {{'plan.attention' op 2 heads and 3 kv heads do not group}}
  plan.attention %q, %k, %k, %p, %kv -> %o {layer = 0 : i64, heads = 2 : i64, kv_heads = 3 : i64, head_dim = 4 : i64} : !plan.buffer<8, f32>, !plan.buffer<8, f32>, !plan.buffer<8, f32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @attention_layer(%q: !plan.buffer<8, f32>, %k: !plan.buffer<8, f32>, %o: !plan.buffer<8, f32>, %p: tensor<?xi32>,
                           %kv: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>) {
  // expected-error @+1 {{'plan.attention' op layer 1 and 2 kv heads of 4 do not fit the cache}}
  plan.attention %q, %k, %k, %p, %kv -> %o {layer = 1 : i64, heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64} : !plan.buffer<8, f32>, !plan.buffer<8, f32>, !plan.buffer<8, f32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @attention_int8(%q: !plan.buffer<8, f32>, %k: !plan.buffer<8, f32>, %o: !plan.buffer<8, f32>, %p: tensor<?xi32>,
                          %kv: !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>) {
  // expected-error @+1 {{'plan.attention' op takes float or bf16 queries, not int8}}
  plan.attention %q, %k, %k, %p, %kv -> %o {layer = 0 : i64, heads = 2 : i64, kv_heads = 2 : i64, head_dim = 4 : i64, activations = #plan.activations<int8>} : !plan.buffer<8, f32>, !plan.buffer<8, f32>, !plan.buffer<8, f32>, tensor<?xi32>, !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 8, f32>, !plan.buffer<8, f32>
  return
}

// -----

func.func @add_rms_norm_same(%a: !plan.buffer<8, f32>, %b: !plan.buffer<8, f32>, %s: !plan.buffer<8, f32>) {
  %g = tfm.weight "g" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  // expected-error @+1 {{'plan.add_rms_norm' op sum and output must be different buffers}}
  plan.add_rms_norm %a, %b, %g -> %s, %s {epsilon = 1.0e-5 : f32} : tensor<8xf32>, !plan.buffer<8, f32>
  return
}

// -----

// expected-error @+1 {{buffer width must be positive, got 0}}
func.func @buffer_width(%x: !plan.buffer<0, f32>) {
  return
}

// -----

func.func @logits_classifier(%x: !plan.buffer<8, f32>, %l: !plan.buffer<16, f32>) {
  %c = tfm.weight "c" {value = dense<0.5> : tensor<12x8xf32>} : tensor<12x8xf32>
  // expected-error @+1 {{'plan.logits' op output width 16 differs from the classifier's 12 rows}}
  plan.logits %x, %c -> %l : !plan.buffer<8, f32>, tensor<12x8xf32>, !plan.buffer<16, f32>
  return
}

// -----

// #plan.spec_tree follows the runtime's tree shapes
// (runtime/speculative/TreeShape.h) and its node count is the tree's.
// expected-error @+1 {{tree shape '0x2': depth 1 has branching 0; expected positive integers separated by 'x', e.g. 4x2x2, or 'default'}}
func.func @spec_tree_zero() attributes {plan.spec_tree = #plan.spec_tree<branching = [0, 2], nodes = 1>} {
  return
}

// -----

// expected-error @+1 {{tree shape '32x32x32': more than 1024 nodes}}
func.func @spec_tree_too_many_nodes() attributes {plan.spec_tree = #plan.spec_tree<branching = [32, 32, 32], nodes = 33825>} {
  return
}

// -----

// expected-error @+1 {{#plan.spec_tree has nodes = 28 but the tree 4x2x2 has 29 (the root included)}}
func.func @spec_tree_nodes() attributes {plan.spec_tree = #plan.spec_tree<branching = [4, 2, 2], nodes = 28>} {
  return
}

// -----

// expected-error @+1 {{'plan.spec_tree' expects a #plan.spec_tree, got "4x2x2"}}
func.func @spec_tree_string() attributes {plan.spec_tree = "4x2x2"} {
  return
}

// -----

func.func @spec_tree_on_an_op(%x: !plan.buffer<8, f32>) {
  // expected-error @+1 {{'plan.spec_tree' belongs on the step's function}}
  plan.add %x, %x -> %x {plan.spec_tree = #plan.spec_tree<branching = [1], nodes = 2>} : !plan.buffer<8, f32>
  return
}

// -----

// #plan.layer_groups: contiguous groups from layer 0, the runtime's rules.
// expected-error @+1 {{#plan.layer_groups expects its first group to start at layer 0}}
func.func @layer_groups_not_from_zero() attributes {plan.layer_groups = #plan.layer_groups<first = [1, 3], layers = 4>} {
  return
}

// -----

// An empty list does not parse: a step has at least one group.
// expected-error @+2 {{expected integer value}}
// expected-error @+1 {{failed to parse Plan_LayerGroupsAttr parameter 'first'}}
func.func @layer_groups_empty() attributes {plan.layer_groups = #plan.layer_groups<first = [], layers = 4>} {
  return
}

// -----

// expected-error @+1 {{#plan.layer_groups expects first layers increasing below 4, got 2 after 2}}
func.func @layer_groups_repeated() attributes {plan.layer_groups = #plan.layer_groups<first = [0, 2, 2], layers = 4>} {
  return
}

// -----

// expected-error @+1 {{#plan.layer_groups expects first layers increasing below 4, got 4 after 0}}
func.func @layer_groups_past_the_end() attributes {plan.layer_groups = #plan.layer_groups<first = [0, 4], layers = 4>} {
  return
}

// -----

// expected-error @+1 {{#plan.layer_groups expects at least 1 layer, got 0}}
func.func @layer_groups_no_layers() attributes {plan.layer_groups = #plan.layer_groups<first = [0], layers = 0>} {
  return
}

// -----

// expected-error @+1 {{'plan.layer_groups' expects a #plan.layer_groups, got [0, 2]}}
func.func @layer_groups_array() attributes {plan.layer_groups = [0, 2]} {
  return
}

// -----

func.func @layer_groups_on_an_op(%x: !plan.buffer<8, f32>) {
  // expected-error @+1 {{'plan.layer_groups' belongs on the step's function}}
  plan.add %x, %x -> %x {plan.layer_groups = #plan.layer_groups<first = [0], layers = 1>} : !plan.buffer<8, f32>
  return
}
