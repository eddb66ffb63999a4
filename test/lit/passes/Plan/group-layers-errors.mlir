// RUN: lathe-opt %s --split-input-file --lathe-group-layers="groups=2" --verify-diagnostics
// RUN: not lathe-opt %s --split-input-file --lathe-group-layers="groups=3" 2>&1 | FileCheck %s --check-prefix=MORE
// RUN: not lathe-opt %s --split-input-file --lathe-group-layers="groups=-1" 2>&1 | FileCheck %s --check-prefix=NONE
// RUN: not lathe-opt %s --split-input-file --lathe-group-layers="bytes=-1" 2>&1 | FileCheck %s --check-prefix=NEGATIVE
// RUN: not lathe-opt %s --split-input-file --lathe-group-layers="groups=2 bytes=1000" 2>&1 | FileCheck %s --check-prefix=BOTH
// RUN: not lathe-opt %s --split-input-file --lathe-group-layers 2>&1 | FileCheck %s --check-prefix=NEITHER

// Options: one line on the function. The first case has 2 layers.
// MORE: error: lathe-group-layers: groups=3 for 2 layers: a group holds at least one layer
// NONE: error: lathe-group-layers: groups=-1: expects at least 1 group
// NEGATIVE: error: lathe-group-layers: bytes=-1: expects a budget of at least 1 byte
// BOTH: error: lathe-group-layers: takes groups=N or bytes=B, not both
// NEITHER: error: lathe-group-layers: expects groups=N (layers split into N groups) or bytes=B (each group's weights within B bytes)

!cache = !tfm.kv_cache<layers = 2, kv_heads = 2, head_dim = 4, capacity = 64, f32>
!b8 = !plan.buffer<8, f32>
func.func @two_layers(%t: tensor<?xi32>, %p: tensor<?xi32>, %c: !cache) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !b8
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !b8
  %g = tfm.weight "g" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  %n = plan.buffer : !b8
  %q = plan.buffer : !b8
  %a = plan.buffer : !b8
  plan.rms_norm %x, %g -> %n {epsilon = 1.0e-5 : f32} : !b8, tensor<8xf32>, !b8
  plan.matmul %n, %w -> %q : !b8, tensor<8x8xf32>, !b8
  plan.attention %q, %n, %n, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  plan.rms_norm %a, %g -> %n {epsilon = 1.0e-5 : f32} : !b8, tensor<8xf32>, !b8
  plan.matmul %n, %w -> %q : !b8, tensor<8x8xf32>, !b8
  plan.attention %q, %n, %n, %p, %c -> %x {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 1 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %x, %e -> %l : !b8, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}

// -----

// The layers are those of the attentions, in order.
!cache = !tfm.kv_cache<layers = 2, kv_heads = 2, head_dim = 4, capacity = 64, f32>
!b8 = !plan.buffer<8, f32>
func.func @out_of_order(%t: tensor<?xi32>, %p: tensor<?xi32>, %c: !cache) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !b8
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !b8
  %a = plan.buffer : !b8
  // expected-error @+1 {{lathe-group-layers: expects the attentions in layer order, found layer 1 where layer 0 belongs}}
  plan.attention %x, %x, %x, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 1 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  plan.attention %a, %a, %a, %p, %c -> %x {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %x, %e -> %l : !b8, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}

// -----

// A layer begins with the kernel that writes its query product's input;
// queries that come from no product leave no place to cut.
!cache = !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 64, f32>
!b8 = !plan.buffer<8, f32>
func.func @no_product(%t: tensor<?xi32>, %p: tensor<?xi32>, %c: !cache) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !b8
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !b8
  %s = plan.buffer : !b8
  plan.add %x, %x -> %s : !b8
  %a = plan.buffer : !b8
  // expected-error @+1 {{lathe-group-layers: cannot find where layer 0 begins: its queries come from a plan.add, not from a product of the layer's normalised input}}
  plan.attention %s, %x, %x, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %a, %e -> %l : !b8, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}

// -----

// Layer 1's query product reads a value computed before layer 0's
// attention: no cut separates the two layers.
!cache = !tfm.kv_cache<layers = 2, kv_heads = 2, head_dim = 4, capacity = 64, f32>
!b8 = !plan.buffer<8, f32>
func.func @interleaved(%t: tensor<?xi32>, %p: tensor<?xi32>, %c: !cache) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %w = tfm.weight "w" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  %x = plan.buffer : !b8
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !b8
  %q = plan.buffer : !b8
  %r = plan.buffer : !b8
  %a = plan.buffer : !b8
  plan.matmul %x, %w -> %q : !b8, tensor<8x8xf32>, !b8
  plan.attention %q, %x, %x, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  plan.matmul %x, %w -> %r : !b8, tensor<8x8xf32>, !b8
  // expected-error @+1 {{lathe-group-layers: cannot find where layer 1 begins: its first kernel, a plan.embedding, comes before the attention of layer 0}}
  plan.attention %r, %a, %a, %p, %c -> %x {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 1 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %x, %e -> %l : !b8, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}

// -----

// Still tfm: the pass runs on the plan.
// expected-error @+1 {{lathe-group-layers: expects a plan step with plan.attention kernels (run lathe-lower-to-plan first)}}
func.func @not_lowered(%t: tensor<?xi32>) -> tensor<?x16xf32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = tfm.embedding %e[%t] : tensor<16x8xf32>, tensor<?xi32> -> tensor<?x8xf32>
  %l = tfm.logits %x, %e : tensor<?x8xf32>, tensor<16x8xf32> -> tensor<?x16xf32>
  return %l : tensor<?x16xf32>
}
