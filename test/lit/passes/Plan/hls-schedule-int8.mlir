// RUN: lathe-opt %s --lathe-hls-schedule="unroll=4" | lathe-opt | FileCheck %s

// Int8 activations (lathe-plan-activations): the rounded input's codes are
// partitioned cyclically by the weights' block (INT8 groups of 32), one
// bank per code a block iteration multiplies. The int8 product has no
// decode stage: no dataflow, whatever its rows. The float classifier
// keeps its decoded rows' partition and its dataflow.
// CHECK-LABEL: func @int8_step
// CHECK: plan.matmul {{.*}} {activations = #plan.activations<int8>, plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_partitions = [#plan.hls_array_partition<"codes", cyclic, factor = 32, dim = 1>]}
// CHECK-NOT: plan.hls_dataflow
// CHECK: plan.logits {{.*}} {plan.hls = #plan.hls_loop<ii = 1, unroll = 4>, plan.hls_dataflow = #plan.hls_dataflow, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 1>]}

!cache = !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 64, f32>
!b8 = !plan.buffer<8, f32>
!w = tensor<8x8x!tfm.int<bits = 8, group = 32, symmetric = true>>
func.func @int8_step(%t: tensor<?xi32>, %p: tensor<?xi32>, %c: !cache) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !b8
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !b8
  %q = plan.buffer : !b8
  %a = plan.buffer : !b8
  %wq = tfm.weight "wq" {value = dense<1> : tensor<288xi8>} : !w
  plan.matmul %x, %wq -> %q {activations = #plan.activations<int8>} : !b8, !w, !b8
  plan.attention %q, %q, %q, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %a, %e -> %l : !b8, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}
