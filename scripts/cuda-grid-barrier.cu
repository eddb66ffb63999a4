// What a grid-wide barrier costs on the GPU, against a dependent launch:
// the measure behind dropping the persistent decode kernel
// (docs/cuda-backend.md, "Not yet"). Each variant runs 2000 barriers in one
// cooperative launch of 132 or 264 blocks of 256 threads:
//   1, 2: one arrival counter and a generation flag (cooperative groups'
//         pattern), with and without __nanosleep while waiting;
//   3:    one counter that only grows, added to with release and polled
//         with acquire loads;
//   4:    blocks arrive in groups of 16, the last of a group at the top.
// Then a CUDA graph of 100 empty 264-block kernels under programmatic
// dependent launch, each waiting for the one before (griddepcontrol).
//   nvcc -O3 -arch=sm_90a -std=c++17 scripts/cuda-grid-barrier.cu -o grid-barrier && ./grid-barrier
#include <cstdio>
#include <cuda_runtime.h>
__device__ unsigned arrived, generation, counter;
__device__ unsigned groupCount[64];
__device__ __forceinline__ unsigned ldAcquire(const unsigned *p) {
  unsigned v; asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory"); return v;
}
__device__ __forceinline__ void redRelease(unsigned *p, unsigned v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" :: "l"(p), "r"(v) : "memory");
}
template <int V> __device__ void barrier(unsigned &target) {
  __syncthreads();
  if (threadIdx.x == 0) {
    if (V == 1 || V == 2) {
      volatile unsigned *g = &generation;
      const unsigned passed = *g;
      __threadfence();
      if (atomicAdd(&arrived, 1u) == gridDim.x - 1) {
        atomicExch(&arrived, 0u); __threadfence(); atomicAdd((unsigned *)g, 1u);
      } else {
        while (*g == passed) { if (V == 1) __nanosleep(32); }
      }
      __threadfence();
    } else if (V == 3) {
      target += gridDim.x;
      redRelease(&counter, 1);
      while (ldAcquire(&counter) < target) {}
    } else if (V == 4) { // groups of 16 blocks, leader arrives at the top
      const unsigned group = blockIdx.x / 16, groups = (gridDim.x + 15) / 16;
      const unsigned inGroup = min(16u, gridDim.x - group * 16);
      target += groups;
      const unsigned gen = target / groups; // barrier number
      unsigned old = atomicAdd(&groupCount[group], 1u);
      __threadfence();
      if (old == gen * inGroup - 1) redRelease(&counter, 1);
      while (ldAcquire(&counter) < target) {}
    }
  }
  __syncthreads();
}
template <int V> __global__ void __launch_bounds__(256, 2) k(int n, float *sink) {
  unsigned target = 0;
  float x = threadIdx.x;
  for (int i = 0; i < n; ++i) { barrier<V>(target); x = x * 1.0001f + 1; }
  if (x == 12345.f) sink[0] = x;
}
__global__ void empty(float *sink) { asm volatile("griddepcontrol.wait;" ::: "memory"); asm volatile("griddepcontrol.launch_dependents;"); if (threadIdx.x == 9999) sink[0] = 1; }
template <int V> void run(int blocks, const char *name) {
  float *sink; cudaMalloc(&sink, 4);
  unsigned z[64] = {}; 
  cudaMemcpyToSymbol(arrived, z, 4); cudaMemcpyToSymbol(generation, z, 4); cudaMemcpyToSymbol(counter, z, 4); cudaMemcpyToSymbol(groupCount, z, sizeof z);
  void *args[] = {nullptr, &sink};
  int n = 2000; args[0] = &n;
  cudaLaunchCooperativeKernel((void *)k<V>, blocks, 256, args, 0, 0); cudaDeviceSynchronize();
  cudaMemcpyToSymbol(arrived, z, 4); cudaMemcpyToSymbol(generation, z, 4); cudaMemcpyToSymbol(counter, z, 4); cudaMemcpyToSymbol(groupCount, z, sizeof z);
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  cudaEventRecord(a);
  cudaLaunchCooperativeKernel((void *)k<V>, blocks, 256, args, 0, 0);
  cudaEventRecord(b); cudaEventSynchronize(b);
  float ms; cudaEventElapsedTime(&ms, a, b);
  printf("%s blocks %d: %.3f us per barrier (%s)\n", name, blocks, ms * 1000 / n, cudaGetErrorString(cudaGetLastError()));
}
int main() {
  for (int blocks : {132, 264}) {
    run<1>(blocks, "atomic+nanosleep");
    run<2>(blocks, "atomic+spin");
    run<3>(blocks, "red.release counter");
    run<4>(blocks, "two-level 16");
  }
  // back-to-back empty kernels with PDL in a graph, for comparison
  float *sink; cudaMalloc(&sink, 4);
  cudaStream_t s; cudaStreamCreate(&s);
  cudaGraph_t g; cudaGraphExec_t ge;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  for (int i = 0; i < 100; ++i) {
    cudaLaunchConfig_t c = {}; c.gridDim = 264; c.blockDim = 256; c.stream = s;
    cudaLaunchAttribute at; at.id = cudaLaunchAttributeProgrammaticStreamSerialization; at.val.programmaticStreamSerializationAllowed = 1;
    c.attrs = &at; c.numAttrs = 1;
    cudaLaunchKernelEx(&c, empty, sink);
  }
  cudaStreamEndCapture(s, &g); cudaGraphInstantiate(&ge, g, 0);
  cudaGraphLaunch(ge, s); cudaStreamSynchronize(s);
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  cudaEventRecord(a, s); for (int r = 0; r < 10; ++r) cudaGraphLaunch(ge, s); cudaEventRecord(b, s); cudaEventSynchronize(b);
  float ms; cudaEventElapsedTime(&ms, a, b);
  printf("graph of 100 empty 264-block kernels with PDL: %.3f us per kernel\n", ms * 1000 / 1000);
}
