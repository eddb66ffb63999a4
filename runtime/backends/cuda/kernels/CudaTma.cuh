// Hopper's asynchronous copies into shared memory and the barriers that
// count them in (sm_90): a tensor map's box loaded by TMA
// (cp.async.bulk.tensor), cp.async copies whose completion arrives on an
// mbarrier, and the mbarrier itself (init, arrive, expect a byte count,
// wait on a phase). The wgmma tiles (CudaWgmmaTiles.cuh) pipeline their
// stages through them. Part of LatheCudaKernels.cuh.
#pragma once

#include <stdint.h>

namespace lathe_cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ inline unsigned sharedAddress(const void *p) { return unsigned(__cvta_generic_to_shared(p)); }

/// An mbarrier of `count` arrivals a phase; then fenced for the async proxy
/// (TMA) by the caller's fenceBarrierInits.
__device__ inline void barrierInit(uint64_t *barrier, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(sharedAddress(barrier)), "r"(count));
}
__device__ inline void fenceBarrierInits() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
/// One arrival that also expects `bytes` more of asynchronous copies
/// (TMA's complete_tx) before the phase completes.
__device__ inline void barrierArriveExpecting(uint64_t *barrier, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(sharedAddress(barrier)),
               "r"(bytes)
               : "memory");
}
__device__ inline void barrierArrive(uint64_t *barrier) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(sharedAddress(barrier)) : "memory");
}
/// Waits until the phase of parity `parity` has completed (a fresh
/// barrier's phase "before" the first, parity 1, counts as completed).
__device__ inline void barrierWait(uint64_t *barrier, unsigned parity) {
  asm volatile("{\n.reg .pred done;\nWAIT:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
               "@!done bra WAIT;\n}\n" ::"r"(sharedAddress(barrier)),
               "r"(parity)
               : "memory");
}
/// One arrival on `barrier` once this thread's cp.async copies so far have
/// landed; counted among the barrier's arrivals (noinc).
__device__ inline void copiesArrive(uint64_t *barrier) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(sharedAddress(barrier))
               : "memory");
}
/// The box of 2-D tensor map `map` (a CUtensorMap in global memory) at
/// (inner, outer) into shared memory at `to`, its bytes counted on
/// `barrier`.
__device__ inline void tensorLoad(void *to, const void *map, uint64_t *barrier, int inner, int outer) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
               "[%0], [%1, {%3, %4}], [%2];" ::"r"(sharedAddress(to)),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(sharedAddress(barrier)), "r"(inner), "r"(outer)
               : "memory");
}
/// Makes the 128-byte tensor map at `map` in global memory, written before
/// the kernel by copies (the generic proxy), visible to this thread's TMA
/// loads through it (the tensormap proxy).
__device__ inline void acquireTensorMap(const void *map) {
  asm volatile("fence.proxy.tensormap::generic.acquire.gpu [%0], 128;" ::"l"(map) : "memory");
}
/// Waits for the threads of `count` (a multiple of 32) that take named
/// barrier `id` (not 0, __syncthreads').
__device__ inline void namedBarrier(int id, int count) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory");
}
#endif

} // namespace lathe_cuda
