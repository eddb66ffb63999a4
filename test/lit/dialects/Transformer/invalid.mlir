// RUN: lathe-opt %s --split-input-file --verify-diagnostics

func.func @linear_width(%x: tensor<?x8xf32>) -> tensor<?x4xf32> {
  %w = tfm.weight "w" {value = dense<0.0> : tensor<4x6xf32>} : tensor<4x6xf32>
  // expected-error @+1 {{expects weight input width 6 to equal the input width 8}}
  %y = tfm.linear %x, %w : tensor<?x8xf32>, tensor<4x6xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

func.func @linear_result(%x: tensor<?x8xf32>) -> tensor<?x5xf32> {
  %w = tfm.weight "w" {value = dense<0.0> : tensor<4x8xf32>} : tensor<4x8xf32>
  // expected-error @+1 {{expects result width 4 (rows of weight), got 5}}
  %y = tfm.linear %x, %w : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x5xf32>
  return %y : tensor<?x5xf32>
}

// -----

func.func @linear_rows(%x: tensor<3x8xf32>) -> tensor<2x4xf32> {
  %w = tfm.weight "w" {value = dense<0.0> : tensor<4x8xf32>} : tensor<4x8xf32>
  // expected-error @+1 {{expects input and result to have the same number of rows, got 3 and 2}}
  %y = tfm.linear %x, %w : tensor<3x8xf32>, tensor<4x8xf32> -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

func.func @weight_type() {
  // expected-error @+1 {{expects value of type 'tensor<4x8xf32>', got 'tensor<4x8xf16>'}}
  %w = tfm.weight "w" {value = dense<0.0> : tensor<4x8xf16>} : tensor<4x8xf32>
  return
}

// -----

func.func @weight_name() {
  // expected-error @+1 {{expects a non-empty name}}
  %w = tfm.weight "" {value = dense<0.0> : tensor<4xf32>} : tensor<4xf32>
  return
}

// -----

func.func @weight_element(%x: tensor<?x8xf32>) {
  // expected-error @+1 {{result #0 must be ranked tensor of}}
  %w = tfm.weight "w" {value = dense<0> : tensor<4xi8>} : tensor<4xi8>
  return
}

// -----

func.func @embedding_width(%t: tensor<?xi32>) -> tensor<?x4xf32> {
  %e = tfm.weight "e" {value = dense<0.0> : tensor<10x8xf32>} : tensor<10x8xf32>
  // expected-error @+1 {{expects result width 8 (table width), got 4}}
  %x = tfm.embedding %e[%t] : tensor<10x8xf32>, tensor<?xi32> -> tensor<?x4xf32>
  return %x : tensor<?x4xf32>
}

// -----

func.func @rms_norm_gain(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %g = tfm.weight "g" {value = dense<1.0> : tensor<6xf32>} : tensor<6xf32>
  // expected-error @+1 {{expects a gain whose length divides the input width 8, got 'tensor<6xf32>'}}
  %y = tfm.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : tensor<?x8xf32>, tensor<6xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @bias_add_width(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %b = tfm.weight "b" {value = dense<1.0> : tensor<4xf32>} : tensor<4xf32>
  // expected-error @+1 {{expects bias of shape [8], got 'tensor<4xf32>'}}
  %y = tfm.bias_add %x, %b : tensor<?x8xf32>, tensor<4xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @rope_scaling(%x: tensor<?x8xf32>, %p: tensor<?xi32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects 0 < low_freq_factor < high_freq_factor}}
  %y = tfm.rope %x, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>, scaling_factor = 8.0 : f32, low_freq_factor = 4.0 : f32, high_freq_factor = 1.0 : f32, original_context = 32} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @rms_norm_eps(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %g = tfm.weight "g" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  // expected-error @+1 {{expects a positive epsilon, got 0}}
  %y = tfm.rms_norm %x, %g {epsilon = 0.0 : f32} : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @rope_order_size(%x: tensor<?x8xf32>, %p: tensor<?xi32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects pair_order to hold whole heads of head_dim / 2 pairs}}
  %y = tfm.rope %x, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>, pair_order = array<i32: 1, 0, 1>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @rope_order_groups(%x: tensor<?x8xf32>, %p: tensor<?xi32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects the pair_order's groups to divide the heads}}
  %y = tfm.rope %x, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>, pair_order = array<i32: 1, 0, 1, 0, 0, 1>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @rope_order_permutation(%x: tensor<?x8xf32>, %p: tensor<?xi32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects each group of pair_order to be a permutation of the pairs}}
  %y = tfm.rope %x, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>, pair_order = array<i32: 1, 0, 1, 1>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @rope_order_range(%x: tensor<?x8xf32>, %p: tensor<?xi32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects each group of pair_order to be a permutation of the pairs}}
  %y = tfm.rope %x, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>, pair_order = array<i32: 0, -1>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @rope_odd(%x: tensor<?x8xf32>, %p: tensor<?xi32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects a positive even head_dim, got 3}}
  %y = tfm.rope %x, %p {head_dim = 3, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

func.func @rope_width(%x: tensor<?x10xf32>, %p: tensor<?xi32>) -> tensor<?x10xf32> {
  // expected-error @+1 {{expects input width 10 to be a multiple of head_dim 4}}
  %y = tfm.rope %x, %p {head_dim = 4, theta = 10000.0 : f32, layout = #tfm.rope_layout<interleaved>} : tensor<?x10xf32>, tensor<?xi32> -> tensor<?x10xf32>
  return %y : tensor<?x10xf32>
}

// -----

!cache = !tfm.kv_cache<layers = 2, kv_heads = 2, head_dim = 4, capacity = 16, f32>
func.func @attention_layer(%q: tensor<?x8xf32>, %k: tensor<?x8xf32>, %p: tensor<?xi32>, %c: !cache) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects layer in [0, 2), got 2}}
  %y = tfm.attention %q, %k, %k, %p, %c {layer = 2, heads = 2} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !cache -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

!cache = !tfm.kv_cache<layers = 2, kv_heads = 2, head_dim = 4, capacity = 16, f32>
func.func @attention_heads(%q: tensor<?x12xf32>, %k: tensor<?x8xf32>, %p: tensor<?xi32>, %c: !cache) -> tensor<?x12xf32> {
  // expected-error @+1 {{expects heads (3) to be a positive multiple of the cache's kv_heads (2)}}
  %y = tfm.attention %q, %k, %k, %p, %c {layer = 0, heads = 3} : tensor<?x12xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !cache -> tensor<?x12xf32>
  return %y : tensor<?x12xf32>
}

// -----

!cache = !tfm.kv_cache<layers = 2, kv_heads = 1, head_dim = 4, capacity = 16, f32>
func.func @attention_kv_width(%q: tensor<?x8xf32>, %k: tensor<?x8xf32>, %p: tensor<?xi32>, %c: !cache) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects keys and values width 4 (kv_heads x head_dim), got 8 and 8}}
  %y = tfm.attention %q, %k, %k, %p, %c {layer = 0, heads = 2} : tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?xi32>, !cache -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// expected-error @+1 {{expects positive layers, kv_heads, head_dim and capacity, got 0, 1, 4, 16}}
func.func @cache_type(%c: !tfm.kv_cache<layers = 0, kv_heads = 1, head_dim = 4, capacity = 16, f32>) {
  return
}

// -----

// expected-error @+1 {{expects an f32, f16, bf16 or !tfm.kv_quant cache element type, got 'i8'}}
func.func @cache_element(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 4, capacity = 16, i8>) {
  return
}

// -----

// expected-error @+1 {{expects a block that divides head_dim 48, got 32}}
func.func @cache_block(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 48, capacity = 16, !tfm.kv_quant<bfp4, block = 32>>) {
  return
}

// -----

// expected-error @+1 {{expects an int8 block equal to head_dim 48, got 16}}
func.func @cache_int8_block(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 48, capacity = 16, !tfm.kv_quant<int8, block = 16>>) {
  return
}

// -----

// expected-error @+2 {{expects an even bfp4 block (two mantissas a byte), got 3}}
// expected-error @+1 {{failed to parse Transformer_KVCacheType parameter 'elementType'}}
func.func @kv_quant_odd(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 48, capacity = 16, !tfm.kv_quant<bfp4, block = 3>>) {
  return
}

// -----

// expected-error @+2 {{expects a positive block, got 0}}
// expected-error @+1 {{failed to parse Transformer_KVCacheType parameter 'elementType'}}
func.func @kv_quant_zero(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 48, capacity = 16, !tfm.kv_quant<bfp8, block = 0>>) {
  return
}

// -----

// expected-error @+2 {{expects no group for bfp4, got group 32}}
// expected-error @+1 {{failed to parse Transformer_KVCacheType parameter 'elementType'}}
func.func @kv_quant_group(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 48, capacity = 16, !tfm.kv_quant<bfp4, block = 16, group = 32>>) {
  return
}

// -----

// A row format's f32 window of recent tokens is a count of tokens.
// expected-error @+2 {{expects a window of at least 0 tokens, got -1}}
// expected-error @+1 {{failed to parse Transformer_KVCacheType parameter 'elementType'}}
func.func @kv_quant_window(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 48, capacity = 16, !tfm.kv_quant<int8, block = 48, window = -1>>) {
  return
}

// -----

func.func @logits_width(%x: tensor<?x8xf32>) -> tensor<?x10xf32> {
  %e = tfm.weight "e" {value = dense<0.0> : tensor<10x6xf32>} : tensor<10x6xf32>
  // expected-error @+1 {{expects classifier input width 6 to equal the input width 8}}
  %y = tfm.logits %x, %e : tensor<?x8xf32>, tensor<10x6xf32> -> tensor<?x10xf32>
  return %y : tensor<?x10xf32>
}

// -----

// expected-error @+2 {{expected 'group' or 'window'}}
// expected-error @+1 {{failed to parse Transformer_KVCacheType parameter 'elementType'}}
func.func @kv_quant_option(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 48, capacity = 16, !tfm.kv_quant<bfp4, block = 16, size = 3>>) {
  return
}

// -----

// expected-error @+2 {{expected '>'}}
// expected-error @+1 {{failed to parse Transformer_KVCacheType parameter 'elementType'}}
func.func @kv_quant_window_twice(%c: !tfm.kv_cache<layers = 1, kv_heads = 1, head_dim = 48, capacity = 16, !tfm.kv_quant<bfp4, block = 16, window = 8, window = 8>>) {
  return
}
