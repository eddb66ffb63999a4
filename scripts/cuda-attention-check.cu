// The one-token attention (runtime/backends/cuda/kernels/CudaTokenAttentionMma.cuh
// and CudaAttention.cuh, as the generated code calls it) on the
// Llama-3.2-1B shape's attention (32 query heads, 8 KV heads of 64, bf16
// queries): SEQUENCES tokens, each seeing CONTEXT cache rows, the rows'
// codes random (bfp4 exponents around 2^0, bf16 values in [-2, 2]), the
// splits of a token's rows over blocks as the runtime chooses them (or
// SPLITS). For each cache (bf16, bfp4 blocks of 32, int8 a scale a head
// row, bfp8 blocks of 32): the outputs of 4 tokens against a float64 reference from the same
// decoded rows (relative L2, worst difference), and two times with the
// cache bytes read per second: a launch alone (mean of 50 launches,
// cudaEvent, each after L2 is emptied: FLUSH_L2), and "steady", a layer's
// share of LAYERS launches back to back, each reading its own layer's copy
// of the rows, with programmatic dependent launch as a decode step's graph
// runs them (a launch's start overlaps the one before's end: a lone
// launch pays its whole start and its splits' merge). The figures behind
// issue 20's "4-bit KV attention >= 2x bf16". From the repository root:
//   nvcc -std=c++20 -O3 -gencode arch=compute_90a,code=sm_90a -I . \
//     scripts/cuda-attention-check.cu -o attention-check && ./attention-check
// (-DLATHE_CUDA_NIBBLE_FRAGMENTS=1: bfp4 caches widened straight into the
// mma fragments, CudaTokenAttentionNibbles.cuh; -DHEAD_DIM=128 for heads
// of 128, which only that path takes to the tensor cores;
// -DLATHE_CUDA_KEYS_AS_ROWS=0 or 2, CudaKeysAsRows.cuh;
// scripts/cuda-attention-variants.sh builds the usual comparisons.)
#include "runtime/backends/cuda/kernels/LatheCudaKernels.cuh"
#include <type_traits>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
using namespace lathe_cuda;
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
  fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1); } } while (0)

#ifndef SEQUENCES
#define SEQUENCES 16
#endif
#ifndef CONTEXT
#define CONTEXT 4096
#endif
#ifndef SPLITS
#define SPLITS 0 // 0: LATHE_CUDA_ATTENTION_SPLITS, as the runtime
#endif
// As the generated code launches it: __launch_bounds__(256) (MIN_BLOCKS:
// that many blocks an SM asked of ptxas too), the body not inlined.
#ifdef MIN_BLOCKS
#define BOUNDS __launch_bounds__(256, MIN_BLOCKS)
#else
#define BOUNDS __launch_bounds__(256)
#endif
#ifndef FLUSH_L2
#define FLUSH_L2 1 // 0: launches back to back, the cache's rows left in L2
#endif
#ifndef EXTRA_SMEM
#define EXTRA_SMEM 0 // dynamic shared memory a block asks for beyond its own: fewer blocks an SM
#endif
#ifndef LAYERS
#define LAYERS 16 // the layers of the steady timing: one cache each, launched back to back
#endif
#ifndef HEAD_DIM
#define HEAD_DIM 64 // other head sizes (multiples of 16 up to 80 take the tensor cores)
#endif
constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = HEAD_DIM, kGroup = 4, kKvWidth = kKvHeads * kHeadDim;

template <class C> static __device__ __noinline__ void body(const LatheCudaFrame &f, float *partials,
                                                          unsigned *arrivals, int layer) {
  attention<C, kHeads, kKvHeads, kHeadDim, kGroup, true>(f, 0, 1, layer, partials, arrivals);
}
template <class C>
__global__ void BOUNDS run(const LatheCudaFrame *f, float *partials, unsigned *arrivals, int layer = 0) {
  body<C>(*f, partials, arrivals, layer);
}

static float bf16ToFloat(uint16_t b) { uint32_t u = uint32_t(b) << 16; float f; memcpy(&f, &u, 4); return f; }
static uint16_t floatToBf16(float f) { // round to nearest even
  uint32_t u; memcpy(&u, &f, 4);
  return uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

// A cache: its row bytes, how to fill a row, and how to decode a head's
// value d of a row. Compressed rows are made whole here (a row's codes,
// then its headers) and laid out as the GPU keeps them (PackedKv::locate)
// when copied to it.
struct Bf16Cache {
  using C = PlainKv<__nv_bfloat16>;
  static constexpr const char *kName = "bf16";
  static void fill(uint8_t *row, std::mt19937 &rng, bool, bool) {
    std::uniform_real_distribution<float> u(-2, 2);
    for (int i = 0; i < kKvWidth; ++i) { const uint16_t b = floatToBf16(u(rng)); memcpy(row + 2 * i, &b, 2); }
  }
  static double at(const uint8_t *row, int kvHead, int d) {
    uint16_t b; memcpy(&b, row + 2 * (kvHead * kHeadDim + d), 2); return bf16ToFloat(b);
  }
};
template <bool Int8, int Bits, int Block> struct PackedCache {
  using C = PackedKv<Int8, Bits, Block>;
  static constexpr const char *kName = Int8 ? "int8" : Bits == 4 ? (Block == 32 ? "bfp4" : "bfp4:16")
                                                                    : (Block == 32 ? "bfp8" : "bfp8:16");
  static constexpr int kBlocks = kKvWidth / Block, kBlock = Block;
  // Where block b keeps its codes and its header in a whole row.
  static int64_t codesAt(int64_t b) { return b * C::kCodeBytes; }
  static int64_t headerAt(int64_t b) { return kBlocks * C::kCodeBytes + b * C::kHeaderBytes; }
  // BFP exponents around 2^0; with `edges`, also the ones the widening
  // treats apart: one block in 64 with a subnormal scale (codes 0-2), and
  // in value rows one in 4096 with a scale of 2^121 (code 250, subtracted
  // first; keys that large would overflow the float scores, and more such
  // values the unnormalized sums).
  static void fill(uint8_t *row, std::mt19937 &rng, bool value, bool edges) {
    std::uniform_int_distribution<int> byte(0, 255), exponent(124, 129), rare(0, 4095), small(0, 2);
    for (int64_t i = 0; i < kBlocks * C::kCodeBytes; ++i) row[i] = uint8_t(byte(rng));
    for (int b = 0; b < kBlocks; ++b) {
      uint8_t *h = row + headerAt(b);
      if (Int8) { const float s = 0.01f * (1 + b % 7); memcpy(h, &s, 4); continue; }
      const int r = edges ? rare(rng) : 64;
      h[0] = r == 0 && value ? 250 : r < 64 ? uint8_t(small(rng)) : uint8_t(exponent(rng));
    }
  }
  static double at(const uint8_t *row, int kvHead, int d) {
    const int64_t b = (kvHead * kHeadDim + d) / Block, i = (kvHead * kHeadDim + d) % Block;
    const uint8_t *codes = row + codesAt(b), *h = row + headerAt(b);
    int code;
    if (Bits == 8) code = int8_t(codes[i]);
    else code = int(uint32_t(codes[i / 2] >> (4 * (i % 2))) << 28) >> 28;
    if (Int8) { float s; memcpy(&s, h, 4); return code * double(s); }
    return std::ldexp(double(code), int(h[0]) - 127 - (Bits - 2));
  }
};

// `edges`: rare exponents too (PackedCache::fill), outputs checked, not timed.
template <class Cache> void check(std::mt19937 &rng, bool edges = false) {
  using C = typename Cache::C;
  constexpr int64_t rowBytes = C::template kRowBytes<kKvWidth>;
  const int64_t rows = int64_t(SEQUENCES) * CONTEXT, kvRows = (rows + 15) / 16 * 16;
  // Layer 0's keys, then its values, then 64 bytes of slack (the runtime's).
  std::vector<uint8_t> kv(2 * kvRows * rowBytes + 64);
  for (int64_t r = 0; r < 2 * kvRows; ++r) Cache::fill(kv.data() + r * rowBytes, rng, r >= kvRows, edges);
  // Each sequence's rows in blocks of 16, the blocks shuffled, as the paged
  // cache hands them out.
  std::vector<int32_t> blocks(kvRows / 16), visibleRows(rows), visible(4 * SEQUENCES);
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = int32_t(i);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (int64_t p = 0; p < rows; ++p) visibleRows[p] = blocks[p / 16] * 16 + p % 16;
  for (int t = 0; t < SEQUENCES; ++t) {
    visible[4 * t] = t * CONTEXT, visible[4 * t + 1] = CONTEXT;
    visible[4 * t + 2] = 0, visible[4 * t + 3] = 0;
  }
  std::vector<float> q(SEQUENCES * kHeads * kHeadDim);
  std::normal_distribution<float> normal;
  for (float &v : q) v = bf16ToFloat(floatToBf16(normal(rng)));

  // The GPU's copy: compressed rows where PackedKv::locate keeps them
  // (each block of 16 rows by KV head), bf16 rows as they are.
  std::vector<uint8_t> gpu = kv;
  if constexpr (!std::is_same_v<C, PlainKv<__nv_bfloat16>>) {
    constexpr int codes = C::template kHeadCodes<kHeadDim>, headers = C::template kHeadHeaders<kHeadDim>;
    for (int64_t r = 0; r < 2 * kvRows; ++r)
      for (int h = 0; h < kKvHeads; ++h) {
        const uint8_t *row = kv.data() + r * rowBytes;
        const auto to = C::template locate<kKvWidth, kHeadDim>(gpu.data(), kvRows, 0, r >= kvRows, r % kvRows, h);
        memcpy(const_cast<uint8_t *>(to.codes), row + Cache::codesAt(int64_t(h) * kHeadDim / Cache::kBlock), codes);
        memcpy(const_cast<uint8_t *>(to.headers), row + Cache::headerAt(int64_t(h) * kHeadDim / Cache::kBlock),
               headers);
      }
  }
  uint8_t *dKv; int32_t *dVisible, *dRows; float *dQ, *dOut, *dPartials; unsigned *dArrivals;
  // LAYERS layers of the same rows (a layer's keys and values follow the
  // one before's: PackedKv::locate, cacheRowBytes), for the steady timing.
  const size_t layerBytes = 2 * kvRows * rowBytes;
  CK(cudaMalloc(&dKv, layerBytes * LAYERS + 64));
  CK(cudaMemset(dKv + layerBytes * LAYERS, 0, 64));
  for (int l = 0; l < LAYERS; ++l)
    CK(cudaMemcpy(dKv + layerBytes * l, gpu.data(), layerBytes, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&dVisible, visible.size() * 4));
  CK(cudaMemcpy(dVisible, visible.data(), visible.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&dRows, visibleRows.size() * 4));
  CK(cudaMemcpy(dRows, visibleRows.data(), visibleRows.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&dQ, q.size() * 4)); CK(cudaMemcpy(dQ, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&dOut, q.size() * 4));
  const int groups = kHeads / kGroup;
  const int splits = SPLITS > 0 ? SPLITS : LATHE_CUDA_ATTENTION_SPLITS(SEQUENCES, groups);
  const int64_t partialFloats = int64_t(SEQUENCES) * groups * splits * kGroup * (kHeadDim + 2);
  CK(cudaMalloc(&dPartials, partialFloats * 4));
  CK(cudaMalloc(&dArrivals, SEQUENCES * groups * 4)); CK(cudaMemset(dArrivals, 0, SEQUENCES * groups * 4));
  float *buffers[2] = {dQ, dOut}, **dBuffers;
  CK(cudaMalloc(&dBuffers, sizeof(buffers)));
  CK(cudaMemcpy(dBuffers, buffers, sizeof(buffers), cudaMemcpyHostToDevice));
  // Each sequence's last row is its decoding token's own, which the step
  // writes (the attention reads it only after waiting for that).
  std::vector<int32_t> storeRows(SEQUENCES);
  for (int t = 0; t < SEQUENCES; ++t) storeRows[t] = visibleRows[int64_t(t) * CONTEXT + CONTEXT - 1];
  int32_t *dStore;
  CK(cudaMalloc(&dStore, storeRows.size() * 4));
  CK(cudaMemcpy(dStore, storeRows.data(), storeRows.size() * 4, cudaMemcpyHostToDevice));
  LatheCudaFrame frame{};
  frame.buffers = dBuffers, frame.visible = dVisible, frame.visibleRows = dRows, frame.kv = dKv;
  frame.kvRows = kvRows, frame.rows = SEQUENCES, frame.storeRows = dStore;
  LatheCudaFrame *dFrame;
  CK(cudaMalloc(&dFrame, sizeof(frame))); CK(cudaMemcpy(dFrame, &frame, sizeof(frame), cudaMemcpyHostToDevice));

  const dim3 grid(SEQUENCES, groups, splits);
  if (EXTRA_SMEM > 0) CK(cudaFuncSetAttribute(run<C>, cudaFuncAttributeMaxDynamicSharedMemorySize, EXTRA_SMEM));
  run<C><<<grid, 256, EXTRA_SMEM>>>(dFrame, dPartials, dArrivals, LAYERS - 1); // the last layer's copy
  CK(cudaDeviceSynchronize());
  std::vector<float> out(q.size());
  CK(cudaMemcpy(out.data(), dOut, out.size() * 4, cudaMemcpyDeviceToHost));
  // Reference: 4 tokens, every head, float64.
  double err = 0, ref = 0, worst = 0;
  for (int t = 0; t < SEQUENCES; t += (SEQUENCES + 3) / 4)
    for (int h = 0; h < kHeads; ++h) {
      const int kvHead = h / (kHeads / kKvHeads);
      std::vector<double> s(CONTEXT);
      double m = -INFINITY;
      for (int p = 0; p < CONTEXT; ++p) {
        const uint8_t *key = kv.data() + int64_t(visibleRows[t * CONTEXT + p]) * rowBytes;
        double dot = 0;
        for (int d = 0; d < kHeadDim; ++d) dot += double(q[(t * kHeads + h) * kHeadDim + d]) * Cache::at(key, kvHead, d);
        s[p] = dot / std::sqrt(double(kHeadDim));
        m = std::max(m, s[p]);
      }
      double total = 0;
      for (double &v : s) total += (v = std::exp(v - m));
      for (int d = 0; d < kHeadDim; ++d) {
        double o = 0;
        for (int p = 0; p < CONTEXT; ++p)
          o += s[p] * Cache::at(kv.data() + (kvRows + visibleRows[t * CONTEXT + p]) * rowBytes, kvHead, d);
        o /= total;
        const double got = out[(t * kHeads + h) * kHeadDim + d];
        err += (got - o) * (got - o), ref += o * o, worst = std::max(worst, std::fabs(got - o));
      }
    }
  // Time: 50 launches, each timed alone after L2 is emptied of the cache
  // (FLUSH_L2, the default: in a decode step the weights streamed since a
  // layer's attention have evicted its rows, and a bfp4 cache of 36 MB
  // would otherwise stay in an H100's 50 MB of L2 from launch to launch
  // and time faster than the model runs it).
  const auto timeLaunches = [&] {
    const int reps = 50;
    std::vector<cudaEvent_t> e0(reps), e1(reps);
    for (int i = 0; i < reps; ++i) { CK(cudaEventCreate(&e0[i])); CK(cudaEventCreate(&e1[i])); }
    const size_t flushBytes = FLUSH_L2 ? size_t(256) << 20 : 0;
    void *flush = nullptr;
    if (flushBytes) CK(cudaMalloc(&flush, flushBytes));
    for (int i = 0; i < 5; ++i) run<C><<<grid, 256, EXTRA_SMEM>>>(dFrame, dPartials, dArrivals);
    for (int i = 0; i < reps; ++i) {
      if (flushBytes) CK(cudaMemsetAsync(flush, i & 0xff, flushBytes));
      CK(cudaEventRecord(e0[i]));
      run<C><<<grid, 256, EXTRA_SMEM>>>(dFrame, dPartials, dArrivals);
      CK(cudaEventRecord(e1[i]));
    }
    CK(cudaDeviceSynchronize());
    double ms = 0;
    for (int i = 0; i < reps; ++i) {
      float one; CK(cudaEventElapsedTime(&one, e0[i], e1[i])); ms += one;
    }
    // Steady: LAYERS launches back to back, layer l reading its own copy
    // of the rows (LAYERS caches outgrow L2), with programmatic dependent
    // launch as the runtime's graph launches them, so that a launch's start
    // (its row lists, its first rows) overlaps the one before's end: the
    // attention's share of a decode step, per layer.
    cudaLaunchAttribute pdl{};
    pdl.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    pdl.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = grid, config.blockDim = dim3(256), config.attrs = &pdl, config.numAttrs = 1;
    config.dynamicSmemBytes = EXTRA_SMEM;
    double steadyMs = 0;
    const int steadyReps = 10;
    for (int i = 0; i < steadyReps; ++i) {
      if (flushBytes) CK(cudaMemsetAsync(flush, i & 0xff, flushBytes));
      CK(cudaEventRecord(e0[i]));
      for (int l = 0; l < LAYERS; ++l)
        CK(cudaLaunchKernelEx(&config, run<C>, (const LatheCudaFrame *)dFrame, dPartials, dArrivals, l));
      CK(cudaEventRecord(e1[i]));
    }
    CK(cudaDeviceSynchronize());
    for (int i = 0; i < steadyReps; ++i) {
      float one; CK(cudaEventElapsedTime(&one, e0[i], e1[i])); steadyMs += one;
    }
    for (int i = 0; i < reps; ++i) { CK(cudaEventDestroy(e0[i])); CK(cudaEventDestroy(e1[i])); }
    if (flush) CK(cudaFree(flush));
    const double us = ms * 1000 / reps, steadyUs = steadyMs * 1000 / steadyReps / LAYERS;
    const double bytes = 2.0 * rows * rowBytes; // every key and value row once
    cudaFuncAttributes attr; CK(cudaFuncGetAttributes(&attr, run<C>));
    printf("%-5s %d x %d rows, %d splits (%d blocks), %d registers: %.1f us, cache %.1f MB at %.2f TB/s; "
           "steady %.1f us a layer (%.2f TB/s); relative L2 %.2e, worst %.2e\n",
           Cache::kName, SEQUENCES, CONTEXT, splits, SEQUENCES * groups * splits, attr.numRegs, us, bytes / 1e6,
           bytes / (us * 1e-6) / 1e12, steadyUs, bytes / (steadyUs * 1e-6) / 1e12, std::sqrt(err / ref), worst);
  };
  if (edges)
    printf("%-5s with edge exponents: relative L2 %.2e, worst %.2e\n", Cache::kName, std::sqrt(err / ref), worst);
  else
    timeLaunches();
  CK(cudaFree(dKv)); CK(cudaFree(dVisible)); CK(cudaFree(dRows)); CK(cudaFree(dQ)); CK(cudaFree(dOut));
  CK(cudaFree(dPartials)); CK(cudaFree(dArrivals)); CK(cudaFree(dBuffers)); CK(cudaFree(dFrame)); CK(cudaFree(dStore));
}

int main() {
  setvbuf(stdout, nullptr, _IONBF, 0);
  std::mt19937 rng(1);
  check<Bf16Cache>(rng);
  if constexpr (kHeadDim % 32 == 0) {
    check<PackedCache<false, 4, 32>>(rng);
    check<PackedCache<false, 4, 32>>(rng, true);
    check<PackedCache<false, 8, 32>>(rng);
  } else {
    check<PackedCache<false, 4, 16>>(rng); // rows not of whole 16 bytes where 8 heads' are not
    check<PackedCache<false, 8, 16>>(rng);
  }
  check<PackedCache<true, 8, kHeadDim>>(rng);
  return 0;
}
