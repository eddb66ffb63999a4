// Whether a persistent decode kernel whose weights stream ahead of its
// barriers can read closer to the card's bandwidth than a graph of
// per-product launches (scripts/cuda-gemv-chain.cu): the measure behind the
// next try at issue 18's 85% (docs/cuda-backend.md, "Not yet", names it).
//
// The same work as cuda-gemv-chain.cu: 16 layers of the Llama-3.2-1B shape's
// bf16 products (q/k/v 3072 x 2048, output 2048 x 2048, gate and up 2 x 8192
// x 2048, down 2048 x 8192) with two small stages a layer standing in for
// RoPE and attention, then a 64128 x 2048 classifier (2208.8 MB a step). Here
// each product reads a normalized input, the output and down products add
// into a residual, and gate/up rows come in pairs whose SwiGLU is the down
// product's input, so the result can be checked against plain kernels.
//
// One cooperative launch of one block an SM runs every stage of the step.
// A block's one producer thread copies the block's share of every product's
// weights, tile after tile (32 KiB, whole rows), into a ring of shared
// memory with the bulk copy engine (cp.async.bulk, an mbarrier a slot),
// never waiting for anything but a free slot: the weights of the stages
// ahead stream while the block's 8 consumer warps wait at a barrier for the
// stage before. A stage's barrier is one counter that only grows (release
// add, acquire polls). Tiles are dealt round-robin, continuing from stage to
// stage so every SM reads the same bytes in a step.
//
// Prints the card's read bandwidth (a plain streaming read of 2 GB), then
// per ring depth the step's time, its share of that bandwidth, and the
// largest relative difference of the logits from plain kernels'.
//   nvcc -O3 -arch=sm_90a -std=c++17 scripts/cuda-persistent-chain.cu -o persistent-chain && ./persistent-chain
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>

#include "cuda-random-bf16.cuh"

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
  std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

constexpr int kTileBytes = 32768;
constexpr int kConsumerWarps = 8;
constexpr int kConsumers = kConsumerWarps * 32;
constexpr int kThreads = kConsumers + 32; // the last warp's lane 0 produces
constexpr int kMaxK = 8192;

enum Kind : int { Product = 0, Halve = 1 };
enum Epilogue : int { Store = 0, AddResidual = 1, SwiGlu = 2 };
struct Stage {
  int kind, K, N, norm, epilogue, rotation; // rotation: the block given tile 0
  const uint16_t *w;                         // N x K bf16, row-major
  const float *x;
  float *y;
};
constexpr int kMaxStages = 128;
__constant__ Stage gStages[kMaxStages];

__device__ __forceinline__ uint32_t smem(const void *p) { return uint32_t(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void mbarInit(uint64_t *b, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem(b)), "r"(count));
}
__device__ __forceinline__ void mbarExpect(uint64_t *b, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem(b)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbarArrive(uint64_t *b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem(b)) : "memory");
}
__device__ __forceinline__ void mbarWait(uint64_t *b, unsigned parity) {
  asm volatile("{\n.reg .pred p;\nWAIT:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
               "@!p bra WAIT;\n}\n" ::"r"(smem(b)), "r"(parity) : "memory");
}
template <bool EvictFirst>
__device__ __forceinline__ void bulkCopy(void *dst, const void *src, unsigned bytes, uint64_t *bar, uint64_t policy) {
  if (EvictFirst)
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;"
                 ::"r"(smem(dst)), "l"(src), "r"(bytes), "r"(smem(bar)), "l"(policy) : "memory");
  else
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(smem(dst)), "l"(src), "r"(bytes), "r"(smem(bar)) : "memory");
}
__device__ __forceinline__ unsigned ldAcquire(const unsigned *p) {
  unsigned v; asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory"); return v;
}
__device__ __forceinline__ void redRelease(unsigned *p, unsigned v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void consumersMeet() { asm volatile("bar.sync 1, %0;" ::"n"(kConsumers) : "memory"); }
__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float silu(float g) { return g / (1.0f + __expf(-g)); }

// A product's tiles: rows a tile, and the tiles this block owns (t0, t0 + G, ...).
__device__ __forceinline__ int rowsPerTile(const Stage &s) { return kTileBytes / (2 * s.K); }
__device__ __forceinline__ int firstTile(const Stage &s) {
  const int G = gridDim.x;
  return ((int(blockIdx.x) - s.rotation) % G + G) % G;
}

template <bool EvictFirst>
__global__ void __launch_bounds__(kThreads, 1)
persistentStep(int stages, int slots, unsigned *done, unsigned epoch, int streamOnly) {
  extern __shared__ __align__(128) unsigned char shared[];
  uint64_t *full = reinterpret_cast<uint64_t *>(shared);
  uint64_t *empty = full + 64;
  float *part = reinterpret_cast<float *>(empty + 64); // 2 x kConsumerWarps
  float *xs = part + 2 * kConsumerWarps + 16;           // kMaxK floats
  unsigned char *ring = reinterpret_cast<unsigned char *>(xs + kMaxK);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, G = gridDim.x;
  if (tid == 0) {
    for (int i = 0; i < slots; ++i) { mbarInit(&full[i], 1); mbarInit(&empty[i], kConsumerWarps); }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (warp == kConsumerWarps) { // the producer
    if (lane != 0) return;
    uint64_t policy = 0;
    if (EvictFirst) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    unsigned it = 0;
    for (int i = 0; i < stages; ++i) {
      const Stage &s = gStages[i];
      if (s.kind != Product) continue;
      const int rows = rowsPerTile(s), tiles = s.N / rows;
      for (int t = firstTile(s); t < tiles; t += G, ++it) {
        const unsigned slot = it % slots, use = it / slots;
        if (use > 0) mbarWait(&empty[slot], (use - 1) & 1);
        mbarExpect(&full[slot], kTileBytes);
        bulkCopy<EvictFirst>(ring + size_t(slot) * kTileBytes, s.w + size_t(t) * rows * s.K, kTileBytes, &full[slot],
                             policy);
      }
    }
    return;
  }

  unsigned it = 0, parity = 0;
  for (int i = 0; i < stages; ++i) {
    const Stage &s = gStages[i];
    if (i > 0) { // every block done with the stage before
      if (tid == 0) while (ldAcquire(&done[i - 1]) < epoch * G) {}
      consumersMeet();
    }
    if (s.kind == Halve) {
      const int per = (s.N + G - 1) / G, at = blockIdx.x * per + tid;
      if (tid < per && at < s.N) s.y[at] = __ldcg(s.x + at) * 0.5f;
    } else {
      // The input, normalized where the stage asks (RMSNorm without a gain).
      float ss = 0;
      for (int k = tid * 4; k < s.K; k += kConsumers * 4) {
        const float4 v = __ldcg(reinterpret_cast<const float4 *>(s.x + k));
        *reinterpret_cast<float4 *>(xs + k) = v;
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
      }
      if (s.norm) {
        ss = warpSum(ss);
        if (lane == 0) part[warp] = ss;
        consumersMeet();
        float total = 0;
        for (int w = 0; w < kConsumerWarps; ++w) total += part[w];
        const float scale = rsqrtf(total / s.K + 1e-5f);
        consumersMeet(); // part is read before it is written again
        for (int k = tid; k < s.K; k += kConsumers) xs[k] *= scale;
      }
      consumersMeet();
      const int rows = rowsPerTile(s), tiles = s.N / rows, warpsPerRow = kConsumerWarps / rows;
      const int row = warp / warpsPerRow, segment = warp % warpsPerRow; // 2048 values a warp
      for (int t = firstTile(s); t < tiles; t += G, ++it) {
        const unsigned slot = it % slots, use = it / slots;
        mbarWait(&full[slot], use & 1);
        if (streamOnly) { // timing only: the tile's bytes arrive, nothing is computed
          __syncwarp();
          if (lane == 0) mbarArrive(&empty[slot]);
          continue;
        }
        const uint4 *w = reinterpret_cast<const uint4 *>(ring + size_t(slot) * kTileBytes + size_t(row) * s.K * 2 +
                                                         segment * 4096);
        const float *x = xs + segment * 2048;
        float acc = 0;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int c = lane + 32 * j;
          const uint4 raw = w[c];
          const float4 x0 = reinterpret_cast<const float4 *>(x + c * 8)[0];
          const float4 x1 = reinterpret_cast<const float4 *>(x + c * 8)[1];
          acc += __uint_as_float(raw.x << 16) * x0.x + __uint_as_float(raw.x & 0xffff0000u) * x0.y;
          acc += __uint_as_float(raw.y << 16) * x0.z + __uint_as_float(raw.y & 0xffff0000u) * x0.w;
          acc += __uint_as_float(raw.z << 16) * x1.x + __uint_as_float(raw.z & 0xffff0000u) * x1.y;
          acc += __uint_as_float(raw.w << 16) * x1.z + __uint_as_float(raw.w & 0xffff0000u) * x1.w;
        }
        acc = warpSum(acc);
        __syncwarp();
        if (lane == 0) { mbarArrive(&empty[slot]); part[parity * kConsumerWarps + warp] = acc; }
        consumersMeet();
        const float *p = part + parity * kConsumerWarps;
        const int n = t * rows + tid;
        if (s.epilogue == SwiGlu) {
          if (tid < rows / 2) {
            float g = 0, u = 0;
            for (int q = 0; q < warpsPerRow; ++q) { g += p[2 * tid * warpsPerRow + q]; u += p[(2 * tid + 1) * warpsPerRow + q]; }
            s.y[t * rows / 2 + tid] = silu(g) * u;
          }
        } else if (tid < rows) {
          float v = 0;
          for (int q = 0; q < warpsPerRow; ++q) v += p[tid * warpsPerRow + q];
          if (s.epilogue == AddResidual) s.y[n] = __ldcg(s.y + n) + v;
          else s.y[n] = v;
        }
        parity ^= 1;
      }
    }
    consumersMeet();
    if (tid == 0) { __threadfence(); redRelease(&done[i], 1); }
  }
}

// Plain kernels for the check: one stage at a time, the same math.
__global__ void refNorm(const float *x, float *out, int K, int norm) {
  __shared__ float total;
  if (threadIdx.x == 0) {
    double ss = 0;
    for (int k = 0; k < K; ++k) ss += double(x[k]) * x[k];
    total = norm ? float(1.0 / std::sqrt(ss / K + 1e-5)) : 1.0f;
  }
  __syncthreads();
  for (int k = threadIdx.x; k < K; k += blockDim.x) out[k] = x[k] * total;
}
__global__ void refProduct(const uint16_t *w, const float *x, float *y, int K, int N, int epilogue) {
  const int n = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (epilogue == SwiGlu) {
    if (n >= N / 2) return;
    float g = 0, u = 0;
    for (int k = lane; k < K; k += 32) {
      g += __uint_as_float(uint32_t(w[size_t(2 * n) * K + k]) << 16) * x[k];
      u += __uint_as_float(uint32_t(w[size_t(2 * n + 1) * K + k]) << 16) * x[k];
    }
    g = warpSum(g); u = warpSum(u);
    if (lane == 0) y[n] = silu(g) * u;
    return;
  }
  if (n >= N) return;
  float v = 0;
  for (int k = lane; k < K; k += 32) v += __uint_as_float(uint32_t(w[size_t(n) * K + k]) << 16) * x[k];
  v = warpSum(v);
  if (lane == 0) y[n] = epilogue == AddResidual ? y[n] + v : v;
}
__global__ void refHalve(const float *x, float *y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = x[i] * 0.5f;
}
__global__ void streamRead(const uint4 *p, size_t n, unsigned *sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) *sink = acc;
}

int main() {
  const int layers = 16;
  int dev = 0, sms = 0; CHECK(cudaGetDevice(&dev));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  cudaDeviceProp prop; CHECK(cudaGetDeviceProperties(&prop, dev));
  std::printf("%s, %d SMs\n", prop.name, sms);

  // Buffers: residual h, q/k/v out, two stand-in outputs, SwiGLU out, logits.
  float *h, *qkv, *rope, *att, *act, *logits, *scratch;
  CHECK(cudaMalloc(&h, 2048 * 4)); CHECK(cudaMalloc(&qkv, 4096 * 4)); CHECK(cudaMalloc(&rope, 4096 * 4));
  CHECK(cudaMalloc(&att, 2048 * 4)); CHECK(cudaMalloc(&act, 8192 * 4)); CHECK(cudaMalloc(&logits, 64128 * 4));
  CHECK(cudaMalloc(&scratch, kMaxK * 4));
  CHECK(cudaMemset(qkv, 0, 4096 * 4));
  std::vector<float> h0(2048);
  for (int i = 0; i < 2048; ++i) h0[i] = std::sin(0.37f * i);

  struct Shape { int K, N; };
  const Shape kQkv{2048, 3072}, kO{2048, 2048}, kGateUp{2048, 16384}, kDown{8192, 2048}, kClassifier{2048, 64128};
  std::vector<Stage> stages;
  size_t total = 0;
  int rotation = 0;
  uint32_t seed = 1;
  auto product = [&](Shape sh, int norm, int epilogue, const float *x, float *y) {
    uint16_t *w; const size_t n = size_t(sh.K) * sh.N;
    CHECK(cudaMalloc(&w, n * 2));
    fillRandomBf16<<<1024, 256>>>(w, n, 1.7f / std::sqrt(float(sh.K)), seed++);
    total += n * 2;
    stages.push_back({Product, sh.K, sh.N, norm, epilogue, rotation, w, x, y});
    rotation = (rotation + sh.N / (kTileBytes / (2 * sh.K))) % sms;
  };
  auto halve = [&](int n, const float *x, float *y) { stages.push_back({Halve, 0, n, 0, Store, 0, nullptr, x, y}); };
  for (int l = 0; l < layers; ++l) {
    product(kQkv, 1, Store, h, qkv);
    halve(4096, qkv, rope);
    halve(2048, rope, att);
    product(kO, 0, AddResidual, att, h);
    product(kGateUp, 1, SwiGlu, h, act);
    product(kDown, 0, AddResidual, act, h);
  }
  product(kClassifier, 1, Store, h, logits);
  CHECK(cudaMemcpyToSymbol(gStages, stages.data(), stages.size() * sizeof(Stage)));
  CHECK(cudaDeviceSynchronize());
  std::printf("weights %.1f MB a step, %zu stages\n", total / 1e6, stages.size());

  cudaEvent_t e0, e1; CHECK(cudaEventCreate(&e0)); CHECK(cudaEventCreate(&e1));
  // The card's read bandwidth: 2 GB read once, best of 5.
  {
    const size_t bytes = size_t(2) << 30;
    uint4 *big; unsigned *sink; CHECK(cudaMalloc(&big, bytes)); CHECK(cudaMalloc(&sink, 4));
    CHECK(cudaMemset(big, 1, bytes));
    float best = 1e9;
    for (int r = 0; r < 6; ++r) {
      CHECK(cudaEventRecord(e0)); streamRead<<<sms * 8, 512>>>(big, bytes / 16, sink); CHECK(cudaEventRecord(e1));
      CHECK(cudaEventSynchronize(e1)); float ms; CHECK(cudaEventElapsedTime(&ms, e0, e1));
      if (r > 0 && ms < best) best = ms;
    }
    std::printf("read bandwidth %.3f TB/s (2 GiB streamed, best of 5)\n", bytes / (best * 1e-3) / 1e12);
    CHECK(cudaFree(big));
    const double bw = bytes / (best * 1e-3);
    // The plain kernels' logits.
    CHECK(cudaMemcpy(h, h0.data(), 2048 * 4, cudaMemcpyHostToDevice));
    for (const Stage &s : stages) {
      if (s.kind == Halve) { refHalve<<<16, 256>>>(s.x, s.y, s.N); continue; }
      refNorm<<<1, 1024>>>(s.x, scratch, s.K, s.norm);
      refProduct<<<(s.N + 7) / 8, 256>>>(s.w, scratch, s.y, s.K, s.N, s.epilogue);
    }
    std::vector<float> want(64128), got(64128);
    CHECK(cudaMemcpy(want.data(), logits, 64128 * 4, cudaMemcpyDeviceToHost));

    unsigned *done; CHECK(cudaMalloc(&done, kMaxStages * 4));
    // The same products without the two stand-in stages a layer (their
    // barriers): timing only, the output product then reads a stale input.
    std::vector<Stage> productsOnly;
    for (const Stage &s : stages)
      if (s.kind == Product) productsOnly.push_back(s);
    auto measure = [&](const std::vector<Stage> &list, int slots, int evict, int streamOnly, const char *what) {
      double bytes = 0;
      for (const Stage &s : list)
        if (s.kind == Product) bytes += 2.0 * s.K * s.N;
      CHECK(cudaMemcpyToSymbol(gStages, list.data(), list.size() * sizeof(Stage)));
      const int count = int(list.size());
      const size_t bytesShared = 64 * 8 * 2 + (2 * kConsumerWarps + 16) * 4 + kMaxK * 4 + size_t(slots) * kTileBytes;
      auto kernel = evict ? persistentStep<true> : persistentStep<false>;
      CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytesShared)));
      CHECK(cudaMemset(done, 0, kMaxStages * 4));
      unsigned epoch = 0;
      auto launch = [&] {
        ++epoch;
        void *args[] = {(void *)&count, (void *)&slots, (void *)&done, (void *)&epoch, (void *)&streamOnly};
        CHECK(cudaLaunchCooperativeKernel((void *)kernel, dim3(sms), dim3(kThreads), args, bytesShared, 0));
      };
      // The check: one step from the same residual (the full list, computing).
      CHECK(cudaMemcpy(h, h0.data(), 2048 * 4, cudaMemcpyHostToDevice));
      launch();
      CHECK(cudaDeviceSynchronize());
      CHECK(cudaMemcpy(got.data(), logits, 64128 * 4, cudaMemcpyDeviceToHost));
      double worst = 0, scale = 0;
      for (int i = 0; i < 64128; ++i) scale = std::fmax(scale, std::fabs(want[i]));
      for (int i = 0; i < 64128; ++i) worst = std::fmax(worst, std::fabs(got[i] - want[i]) / scale);
      for (int i = 0; i < 3; ++i) launch();
      const int reps = 20;
      CHECK(cudaEventRecord(e0));
      for (int i = 0; i < reps; ++i) launch();
      CHECK(cudaEventRecord(e1)); CHECK(cudaEventSynchronize(e1));
      float ms; CHECK(cudaEventElapsedTime(&ms, e0, e1));
      const double step = ms * 1e-3 / reps;
      std::printf("persistent, %s, %d slots of 32 KiB%s: step %.1f us, %.1f%% of the measured bandwidth "
                  "(%.0f tokens/s)", what, slots, evict ? ", L2 evict-first" : "", step * 1e6,
                  100.0 * bytes / step / bw, 1 / step);
      if (&list == &stages && !streamOnly)
        std::printf(", logits within %.2g of plain kernels' (relative to the largest, %.3g)", worst, scale);
      std::printf("\n");
    };
    for (int slots : {2, 3, 4, 6}) measure(stages, slots, 0, 0, "whole step");
    for (int slots : {4, 6}) measure(stages, slots, 1, 0, "whole step");
    for (int slots : {4, 6}) measure(productsOnly, slots, 0, 0, "products only");
    for (int slots : {4, 6}) measure(stages, slots, 0, 1, "whole step, tiles not computed");
    for (int slots : {4, 6}) measure(productsOnly, slots, 0, 1, "products only, tiles not computed");
    for (int slots : {4, 6}) measure(stages, slots, 0, 0, "whole step (again)");
    // The bulk copies' own rate: one stage of 263 MB (the classifier), no
    // barrier inside it.
    const std::vector<Stage> classifierOnly{stages.back()};
    for (int slots : {2, 4, 6}) measure(classifierOnly, slots, 0, 1, "classifier only, tiles not computed");
    for (int slots : {4, 6}) measure(classifierOnly, slots, 1, 1, "classifier only, tiles not computed");
    for (int slots : {4, 6}) measure(classifierOnly, slots, 0, 0, "classifier only");
  }
  return 0;
}
