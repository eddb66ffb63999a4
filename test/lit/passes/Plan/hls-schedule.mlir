// RUN: lathe-opt %s --lathe-hls-schedule | FileCheck %s --check-prefix=ONE
// RUN: lathe-opt %s --lathe-hls-schedule="unroll=8 ii=2" | lathe-opt | FileCheck %s --check-prefix=EIGHT

// A decode step of one layer: the embedding (f32 16x8, 512 bytes), a
// grouped q/k product (f32 and f16 8x8: 256 and 128 bytes), rope, attention
// over a cache of 64 positions, a 12-row product (384 bytes) and the
// classifier (the embedding's table again). The kernels are unchanged.

// By default one row at a time at II 1, on every kernel; the interfaces
// are sized to what the design reads: the weights in order of first use,
// 64-byte aligned (512 + 256 + 128, aligned to 896, + 384), one cos and
// one sin table of 64 positions of 2 frequencies, 1 layer x (keys, values)
// x 64 positions x 8 floats, 16 logits. One row at a time needs no
// partition; every float product here has two row groups or more, so its
// decode overlaps its dot products (dataflow).
// ONE-LABEL: func @forward
// ONE-SAME: plan.hls_interfaces = [#plan.hls_interface<"weights", bundle = "gmem0", depth = 1280>, #plan.hls_interface<"tables", bundle = "gmem1", depth = 256>, #plan.hls_interface<"cache", bundle = "gmem2", depth = 1024>, #plan.hls_interface<"logits", bundle = "gmem3", depth = 16>]
// ONE-NOT: plan.hls_partitions
// ONE: plan.embedding {{.*}} {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>}
// ONE: plan.matmuls {{.*}} {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>, plan.hls_dataflow = #plan.hls_dataflow}
// ONE: plan.rope {{.*}}plan.hls = #plan.hls_loop<ii = 1, unroll = 1>
// ONE: plan.rope {{.*}}plan.hls = #plan.hls_loop<ii = 1, unroll = 1>
// ONE: plan.attention {{.*}}plan.hls = #plan.hls_loop<ii = 1, unroll = 1>
// ONE: plan.matmul {{.*}} {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>, plan.hls_dataflow = #plan.hls_dataflow}
// ONE: plan.silu_mul {{.*}} {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>}
// ONE: plan.add {{.*}} {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>}
// ONE: plan.add_rms_norm {{.*}}plan.hls = #plan.hls_loop<ii = 1, unroll = 1>}
// ONE: plan.rms_norm {{.*}}plan.hls = #plan.hls_loop<ii = 1, unroll = 1>}
// ONE: plan.bias_add {{.*}} {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>}
// ONE: plan.logits {{.*}} {plan.hls = #plan.hls_loop<ii = 1, unroll = 1>, plan.hls_dataflow = #plan.hls_dataflow}
// ONE-NOT: plan.hls_partitions

// unroll=8: the largest divisor of each product's rows within 8 (12 rows:
// 6), the other kernels' II. The decoded rows are partitioned completely,
// a row per bank for each of the rows at once. The q/k product (8 rows, 8
// at once) is one row group: no dataflow. The attributes survive a round
// trip through the printer.
// EIGHT: plan.embedding {{.*}} {plan.hls = #plan.hls_loop<ii = 2, unroll = 1>}
// EIGHT: plan.matmuls {{.*}} {plan.hls = #plan.hls_loop<ii = 2, unroll = 8>, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 1>]}
// EIGHT: plan.attention {{.*}}plan.hls = #plan.hls_loop<ii = 2, unroll = 1>
// EIGHT: plan.matmul {{.*}} {plan.hls = #plan.hls_loop<ii = 2, unroll = 6>, plan.hls_dataflow = #plan.hls_dataflow, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 1>]}
// EIGHT: plan.silu_mul {{.*}} {plan.hls = #plan.hls_loop<ii = 2, unroll = 1>}
// EIGHT: plan.logits {{.*}} {plan.hls = #plan.hls_loop<ii = 2, unroll = 8>, plan.hls_dataflow = #plan.hls_dataflow, plan.hls_partitions = [#plan.hls_array_partition<"rows", complete, dim = 1>]}

!cache = !tfm.kv_cache<layers = 1, kv_heads = 2, head_dim = 4, capacity = 64, f32>
!b8 = !plan.buffer<8, f32>
!b12 = !plan.buffer<12, f32>
func.func @forward(%t: tensor<?xi32>, %p: tensor<?xi32>, %c: !cache) -> !plan.buffer<16, f32> {
  %e = tfm.weight "emb" {value = dense<0.5> : tensor<16x8xf32>} : tensor<16x8xf32>
  %x = plan.buffer : !b8
  plan.embedding %e[%t] -> %x : tensor<16x8xf32>, tensor<?xi32>, !b8
  %q = plan.buffer : !b8
  %k = plan.buffer : !b8
  %u = plan.buffer : !b12
  %a = plan.buffer : !b8
  %wq = tfm.weight "wq" {value = dense<0.5> : tensor<8x8xf32>} : tensor<8x8xf32>
  %wk = tfm.weight "wk" {value = dense<0.5> : tensor<8x8xf16>} : tensor<8x8xf16>
  plan.matmuls %x, [%wq, %wk] -> [%q, %k] : !b8, [tensor<8x8xf32>, tensor<8x8xf16>], [!b8, !b8]
  plan.rope %q at %p -> %q {head_dim = 4 : i64, layout = #tfm.rope_layout<interleaved>, theta = 1.000000e+04 : f32} : !b8, tensor<?xi32>, !b8
  plan.rope %k at %p -> %k {head_dim = 4 : i64, layout = #tfm.rope_layout<interleaved>, theta = 1.000000e+04 : f32} : !b8, tensor<?xi32>, !b8
  plan.attention %q, %k, %k, %p, %c -> %a {head_dim = 4 : i64, heads = 2 : i64, kv_heads = 2 : i64, layer = 0 : i64} : !b8, !b8, !b8, tensor<?xi32>, !cache, !b8
  %wu = tfm.weight "wu" {value = dense<0.5> : tensor<12x8xf32>} : tensor<12x8xf32>
  plan.matmul %a, %wu -> %u : !b8, tensor<12x8xf32>, !b12
  %s = plan.buffer : !b12
  plan.silu_mul %u, %u -> %s : !b12
  plan.add %q, %k -> %a : !b8
  %g = tfm.weight "g" {value = dense<1.0> : tensor<8xf32>} : tensor<8xf32>
  plan.add_rms_norm %q, %a, %g -> %k, %x {epsilon = 1.0e-5 : f32} : tensor<8xf32>, !b8
  plan.rms_norm %x, %g -> %q {epsilon = 1.0e-5 : f32} : !b8, tensor<8xf32>, !b8
  plan.bias_add %q, %g -> %x : !b8, tensor<8xf32>, !b8
  %l = plan.buffer : !plan.buffer<16, f32>
  plan.logits %x, %e -> %l : !b8, tensor<16x8xf32>, !plan.buffer<16, f32>
  return %l : !plan.buffer<16, f32>
}
