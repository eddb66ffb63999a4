// How close a chain of per-product kernels can come to the card's read
// bandwidth in a batch-1 decode step: the measure behind the CUDA target's
// single-token products (docs/cuda-backend.md). One "layer" is the Llama-3.2-1B
// shape's q/k/v (3072 x 2048), two small kernels standing in for RoPE and
// attention, the output projection (2048 x 2048), gate and up (2 x 8192 x
// 2048) and down (2048 x 8192), all bf16 weights against a float vector
// that the kernel before wrote; 16 layers, then a 262 MB classifier, in one
// CUDA graph under programmatic dependent launch. Each product kernel first
// normalizes its input into shared memory (as the fused RMSNorm does).
// Variants of how a warp streams its rows:
//   0: a batch of 8 16-byte loads a lane, used, then the next (today's);
//   1: as 0, but the warp's first batch is loaded before the kernel waits
//      for the one before (weights never depend on it);
//   2: as 1, and every next batch is loaded before the current is used
//      (two batches in registers);
//   3: as 2 with a batch of 4 loads (less in flight, fewer registers);
//   4: as 2, the weights reached through a frame, an argument table and a
//      pointer array in device memory (as Lathe's generated kernels);
//   5: as 4, normalizing as Lathe's fused norm (double squares, a gain);
//   6: as 2, every kernel letting the next start as it begins rather than
//      after it waits (at one block an SM the next kernel's blocks then sit
//      beside it and load their first batch while it streams);
//   7: as 6 with batches of 4 loads and at most 64 registers a thread
//      (__launch_bounds__(256, 4)): two blocks an SM streaming, two of the
//      next kernel beside them.
// Prints per variant: microseconds a step, the share of a 4.1 TB/s card,
// and each kind of product alone (16 launches of it in a graph).
//   nvcc -O3 -arch=sm_90a -std=c++17 scripts/cuda-gemv-chain.cu -o gemv-chain && ./gemv-chain
#include <cstdio>
#include <cstdint>
#include <vector>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
  std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

__device__ __forceinline__ void waitPrev() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void letNext() { asm volatile("griddepcontrol.launch_dependents;" :::); }

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int L> struct Batch { uint4 raw[L]; };

// Units of a warp's walk: (row i of the warp's rows, batch b of the row).
template <int K, int L> struct Walk {
  static constexpr int kChunks = K / 8;                 // 16-byte chunks a row
  static constexpr int kBatches = kChunks / (32 * L);   // batches a row
  const uint4 *w; int firstRow, stride, N;
  __device__ int rows() const { return firstRow < N ? (N - firstRow + stride - 1) / stride : 0; }
  __device__ void load(int u, Batch<L> &b) const {
    const int row = firstRow + (u / kBatches) * stride, batch = u % kBatches;
    const uint4 *p = w + int64_t(row) * kChunks + batch * 32 * L + threadIdx.x % 32;
#pragma unroll
    for (int i = 0; i < L; ++i) b.raw[i] = __ldg(p + 32 * i);
  }
  __device__ float use(int u, const Batch<L> &b, const float *x) const {
    const int batch = u % kBatches;
    float acc = 0;
#pragma unroll
    for (int i = 0; i < L; ++i) {
      const int c = batch * 32 * L + threadIdx.x % 32 + 32 * i;
      const uint32_t v[4] = {b.raw[i].x, b.raw[i].y, b.raw[i].z, b.raw[i].w};
      const float4 x0 = reinterpret_cast<const float4 *>(x + c * 8)[0];
      const float4 x1 = reinterpret_cast<const float4 *>(x + c * 8)[1];
      const float xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        acc += __uint_as_float(v[q] << 16) * xs[2 * q];
        acc += __uint_as_float(v[q] & 0xFFFF0000u) * xs[2 * q + 1];
      }
    }
    return acc;
  }
};

// Modes 4 and 5 reach the weights as Lathe's kernels do: through the
// frame (a pointer parameter), an argument table and a pointer array, all
// in device memory (three dependent loads before the first weight load);
// mode 5 also normalizes as Lathe's fused norm does (squares summed in
// double, a bf16 gain read from memory).
struct Frame { const uint4 *const *weights; const int *args; };
__device__ const Frame *gFrame;

template <int K, int Mode>
__device__ void gemvBody(const uint4 *w, const float *x, float *y, int N, const Frame *frame, int arg) {
  constexpr int L = Mode == 3 || Mode == 7 ? 4 : 8;
  if (Mode >= 6) letNext();
  if (Mode == 4 || Mode == 5) w = frame->weights[frame->args[arg]];
  __shared__ __align__(16) float xs[K];
  __shared__ float part[8];
  const int warp = threadIdx.x / 32;
  Walk<K, L> walk{w, int(blockIdx.x) * 8 + warp, int(gridDim.x) * 8, N};
  const int units = walk.rows() * Walk<K, L>::kBatches;
  Batch<L> cur, next;
  if (Mode == 0) {
    // 16 KiB of the block's first rows asked of L2, as today.
    const char *begin = reinterpret_cast<const char *>(w + int64_t(blockIdx.x) * 8 * (K / 8));
    for (int i = threadIdx.x; i < 128; i += 256)
      if (int64_t(blockIdx.x) * 8 < N) asm volatile("prefetch.global.L2 [%0];" ::"l"(begin + i * 128));
  } else if (units > 0) {
    walk.load(0, cur);
  }
  waitPrev();
  letNext();
  // The fused norm: sum of squares over the block, then x * scale.
  if (Mode == 5) {
    __shared__ double dpart[8];
    double ss = 0;
    for (int k = threadIdx.x; k < K; k += 256) { const float v = x[k]; xs[k] = v; ss += double(v) * v; }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0) dpart[warp] = ss;
    __syncthreads();
    double total = 0;
    for (int i = 0; i < 8; ++i) total += dpart[i];
    const float scale = float(1.0 / sqrt(total / K + 1e-5));
    const uint16_t *gain = reinterpret_cast<const uint16_t *>(frame->weights[frame->args[arg & ~1]]);
    for (int k = threadIdx.x; k < K; k += 256) xs[k] = __uint_as_float(uint32_t(gain[k % 2048]) << 16) * (scale * xs[k]);
    __syncthreads();
  } else {
  float ss = 0;
  for (int k = threadIdx.x; k < K; k += 256) { const float v = x[k]; xs[k] = v; ss += v * v; }
  ss = warpSum(ss);
  if (threadIdx.x % 32 == 0) part[warp] = ss;
  __syncthreads();
  float total = 0;
  for (int i = 0; i < 8; ++i) total += part[i];
  const float scale = rsqrtf(total / K + 1e-5f);
  for (int k = threadIdx.x; k < K; k += 256) xs[k] *= scale;
  __syncthreads();
  }
  float acc = 0;
  for (int u = 0; u < units; ++u) {
    if (Mode == 0) walk.load(u, cur);
    else if (Mode == 1 && u > 0) walk.load(u, cur);
    if (Mode >= 2 && u + 1 < units) walk.load(u + 1, next);
    acc += walk.use(u, cur, xs);
    if (Mode >= 2) cur = next;
    if ((u + 1) % Walk<K, L>::kBatches == 0) {
      acc = warpSum(acc);
      if (threadIdx.x % 32 == 0) y[walk.firstRow + (u / Walk<K, L>::kBatches) * walk.stride] = acc * 1e-3f;
      acc = 0;
    }
  }
}

template <int K, int Mode>
__global__ void __launch_bounds__(256, 2)
gemv(const uint4 *w, const float *x, float *y, int N, const Frame *frame, int arg) {
  gemvBody<K, Mode>(w, x, y, N, frame, arg);
}
template <int K>
__global__ void __launch_bounds__(256, 4)
gemv7(const uint4 *w, const float *x, float *y, int N, const Frame *frame, int arg) {
  gemvBody<K, 7>(w, x, y, N, frame, arg);
}

// RoPE / attention stand-ins: a few blocks that read a vector and write one.
__global__ void small(const float *x, float *y, int n, int early) {
  if (early) letNext();
  waitPrev();
  letNext();
  for (int i = blockIdx.x * 256 + threadIdx.x; i < n; i += gridDim.x * 256) y[i] = x[i] * 0.5f;
}

struct Kind { const char *name; int K, N; };
static const Kind kKinds[] = {{"qkv", 2048, 3072}, {"o", 2048, 2048}, {"gate/up", 2048, 16384},
                              {"down", 8192, 2048}, {"classifier", 2048, 64128}};

template <int Mode> void launchGemv(cudaStream_t s, int K, int N, const uint4 *w, const float *x, float *y, int blocks,
                                   const Frame *frame, int arg) {
  cudaLaunchConfig_t c = {};
  cudaLaunchAttribute a[1];
  a[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a[0].val.programmaticStreamSerializationAllowed = 1;
  c.gridDim = dim3(blocks); c.blockDim = dim3(256); c.stream = s; c.attrs = a; c.numAttrs = 1;
  if constexpr (Mode == 7) {
    if (K == 2048) CHECK(cudaLaunchKernelEx(&c, gemv7<2048>, w, x, y, N, frame, arg));
    else CHECK(cudaLaunchKernelEx(&c, gemv7<8192>, w, x, y, N, frame, arg));
  } else {
    if (K == 2048) CHECK(cudaLaunchKernelEx(&c, gemv<2048, Mode>, w, x, y, N, frame, arg));
    else CHECK(cudaLaunchKernelEx(&c, gemv<8192, Mode>, w, x, y, N, frame, arg));
  }
}
void launchSmall(cudaStream_t s, const float *x, float *y, int n, int blocks, int early) {
  cudaLaunchConfig_t c = {};
  cudaLaunchAttribute a[1];
  a[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a[0].val.programmaticStreamSerializationAllowed = 1;
  c.gridDim = dim3(blocks); c.blockDim = dim3(256); c.stream = s; c.attrs = a; c.numAttrs = 1;
  CHECK(cudaLaunchKernelEx(&c, small, x, y, n, early));
}

int main() {
  const int layers = 16, sms = 132;
  // Per layer: qkv, o, gate/up, down; then the classifier.
  std::vector<uint4 *> weights;
  size_t total = 0;
  for (int l = 0; l <= layers; ++l)
    for (int k = (l == layers ? 4 : 0); k < (l == layers ? 5 : 4); ++k) {
      const size_t bytes = size_t(kKinds[k].K) * kKinds[k].N * 2;
      uint4 *p; CHECK(cudaMalloc(&p, bytes)); CHECK(cudaMemset(p, 0x3c, bytes));
      weights.push_back(p); total += bytes;
    }
  // The frame of modes 4 and 5: argument i names weight i.
  std::vector<int> args(weights.size());
  for (size_t i = 0; i < args.size(); ++i) args[i] = int(i);
  Frame host{}, *frame;
  const uint4 **table; int *argTable;
  CHECK(cudaMalloc(&table, weights.size() * sizeof(void *)));
  CHECK(cudaMemcpy(table, weights.data(), weights.size() * sizeof(void *), cudaMemcpyHostToDevice));
  CHECK(cudaMalloc(&argTable, args.size() * sizeof(int)));
  CHECK(cudaMemcpy(argTable, args.data(), args.size() * sizeof(int), cudaMemcpyHostToDevice));
  host.weights = table; host.args = argTable;
  CHECK(cudaMalloc(&frame, sizeof(Frame)));
  CHECK(cudaMemcpy(frame, &host, sizeof(Frame), cudaMemcpyHostToDevice));
  float *buf[2]; for (auto &b : buf) { CHECK(cudaMalloc(&b, 64128 * 4)); CHECK(cudaMemset(b, 0, 64128 * 4)); }
  cudaStream_t s; CHECK(cudaStreamCreate(&s));
  cudaEvent_t e0, e1; CHECK(cudaEventCreate(&e0)); CHECK(cudaEventCreate(&e1));
  auto timeGraph = [&](auto record) {
    cudaGraph_t g; cudaGraphExec_t ge;
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    record();
    CHECK(cudaStreamEndCapture(s, &g)); CHECK(cudaGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < 3; ++i) CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaEventRecord(e0, s));
    const int reps = 20;
    for (int i = 0; i < reps; ++i) CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaEventRecord(e1, s)); CHECK(cudaEventSynchronize(e1));
    float ms; CHECK(cudaEventElapsedTime(&ms, e0, e1));
    CHECK(cudaGraphExecDestroy(ge)); CHECK(cudaGraphDestroy(g));
    return ms * 1000 / reps;
  };
  auto blocksFor = [&](int N, int perSm) { int b = (N + 7) / 8; return b < perSm * sms ? b : perSm * sms; };
  auto run = [&](auto modeTag, int perSm) {
    constexpr int M = decltype(modeTag)::value;
    auto gemvOf = [&](int k, const uint4 *w, int from) {
      int arg = 0;
      while (weights[arg] != w) ++arg;
      launchGemv<M>(s, kKinds[k].K, kKinds[k].N, w, buf[from], buf[1 - from], blocksFor(kKinds[k].N, perSm),
                    frame, arg);
    };
    const float step = timeGraph([&] {
      for (int l = 0; l < layers; ++l) {
        gemvOf(0, weights[4 * l], 0);
        launchSmall(s, buf[1], buf[0], 4096, 16, M >= 6);
        launchSmall(s, buf[0], buf[1], 2048, 8, M >= 6);
        gemvOf(1, weights[4 * l + 1], 1);
        gemvOf(2, weights[4 * l + 2], 0);
        gemvOf(3, weights[4 * l + 3], 1);
      }
      gemvOf(4, weights[4 * layers], 0);
    });
    std::printf("mode %d, %d blocks an SM: step %.1f us, %.1f%% of 4.1 TB/s (%.0f tokens/s)", M, perSm, step,
                100.0 * total / (step * 1e-6) / 4.1e12, 1e6 / step);
    for (int k = 0; k < 5; ++k) {
      const float t = timeGraph([&] { for (int i = 0; i < 16; ++i) gemvOf(k, weights[k == 4 ? 4 * layers : 4 * i + k], i % 2); });
      const double bytes = double(kKinds[k].K) * kKinds[k].N * 2;
      std::printf("; %s %.1f us %.2f TB/s", kKinds[k].name, t / 16, bytes / (t / 16 * 1e-6) / 1e12);
    }
    std::printf("\n");
  };
  std::printf("weights %.1f MB a step\n", total / 1e6);
  for (int perSm : {2, 1}) {
    run(std::integral_constant<int, 0>{}, perSm);
    run(std::integral_constant<int, 2>{}, perSm);
    run(std::integral_constant<int, 3>{}, perSm);
    run(std::integral_constant<int, 4>{}, perSm);
    run(std::integral_constant<int, 5>{}, perSm);
    run(std::integral_constant<int, 6>{}, perSm);
  }
  run(std::integral_constant<int, 7>{}, 2); // four resident: two of each kernel
  return 0;
}
