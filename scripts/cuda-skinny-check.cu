// Whether the products of a few dozen tokens (a 64-node token tree, a batch
// of decoding sequences) can stream their bf16 weights near the card's
// bandwidth on mma.sync, with the weights loaded straight from memory into
// registers and no shared-memory staging: the measure behind issue 21's
// 64-node verification step (the wgmma tiles it takes today read 0.5-1.7
// TB/s at 64 tokens, docs/cuda-backend.md).
//
// y[t, n] = sum_k x[t, k] W[n, k] for T <= 64 tokens, W bf16 N x K
// row-major, x bf16 T x K row-major (rows past T read as zeros), y float.
// A warp multiplies MT tiles of 16 weight rows by all 64 tokens over one
// slice of k (m16n8k16, the weights as A, the tokens as B): per 64 values
// of k a lane loads 32 bytes of each of its two rows of each tile (the
// next 64 loaded before the current are used) and 32 bytes of each of its
// 8 token rows (L1/L2, shared by the warps and blocks reading the same
// slice). The dot product does not depend on the order of k, so a lane's
// 32 contiguous bytes stand for the k indices the fragment layout gives it
// (the same order for weights and tokens). A block's 8 warps are WR groups
// of rows by WK slices of k; the slices' sums meet in shared memory, added
// in slice order.
//
// Prints per product and layout: the largest difference from a float64
// reference of the same bf16 operands (4096 sampled outputs, relative to
// the largest reference value) and the time of one launch, L2 emptied
// before each (the weights come from memory, as in a decode step) and
// back to back (the weights of the small products stay in L2).
//   nvcc -O3 -std=c++17 -arch=sm_90a scripts/cuda-skinny-check.cu -o skinny-check && ./skinny-check
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <cuda_runtime.h>

#include "cuda-random-bf16.cuh"

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
  std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); std::exit(1); } } while (0)

__device__ __forceinline__ uint4 streamLoad(const uint4 *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int K, int WR, int WK, int MT>
__global__ void __launch_bounds__(256, MT == 1 ? 2 : 1) skinny(const uint16_t *__restrict__ W, const uint16_t *__restrict__ X,
                                              float *__restrict__ Y, int N, int T) {
  static_assert(WR * WK == 8, "8 warps");
  constexpr int kSlice = K / WK, kSteps = kSlice / 64, kRows = 16 * MT * WR;
  static_assert(kSlice % 64 == 0, "whole steps of 64");
  extern __shared__ float sums[]; // [warp][lane][MT * 32]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int wr = warp / WK, wk = warp % WK;
  const int rowBase = blockIdx.x * kRows + wr * 16 * MT, kBase = wk * kSlice;
  // The lane's rows g and g + 8 of each tile; its 32 bytes of each step at q * 16.
  const uint4 *rows[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = min(rowBase + mt * 16 + g + 8 * h, N - 1);
      rows[mt][h] = reinterpret_cast<const uint4 *>(W + size_t(r) * K + kBase + q * 16);
    }
  const uint4 *tokens = reinterpret_cast<const uint4 *>(X + size_t(g) * K + kBase + q * 16);
  float acc[MT][8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[mt][nt][c] = 0;
  uint4 cur[MT][2][2], next[MT][2][2];
  auto load = [&](int step, uint4 (&w)[MT][2][2]) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        w[mt][h][0] = streamLoad(rows[mt][h] + step * 8);
        w[mt][h][1] = streamLoad(rows[mt][h] + step * 8 + 1);
      }
  };
  load(0, cur);
#pragma unroll 1
  for (int step = 0; step < kSteps; ++step) {
    if (step + 1 < kSteps) load(step + 1, next);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const uint4 *t = tokens + size_t(nt) * 8 * K / 8 + step * 8;
      const uint4 b0 = __ldg(t), b1 = __ldg(t + 1);
      const uint32_t b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const uint32_t lo[8] = {cur[mt][0][0].x, cur[mt][0][0].y, cur[mt][0][0].z, cur[mt][0][0].w,
                                cur[mt][0][1].x, cur[mt][0][1].y, cur[mt][0][1].z, cur[mt][0][1].w};
        const uint32_t hi[8] = {cur[mt][1][0].x, cur[mt][1][0].y, cur[mt][1][0].z, cur[mt][1][0].w,
                                cur[mt][1][1].x, cur[mt][1][1].y, cur[mt][1][1].z, cur[mt][1][1].w};
#pragma unroll
        for (int s = 0; s < 4; ++s) mma(acc[mt][nt], lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1], b[2 * s], b[2 * s + 1]);
      }
    }
    if (step + 1 < kSteps) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) { cur[mt][h][0] = next[mt][h][0]; cur[mt][h][1] = next[mt][h][1]; }
    }
  }
  float *mine = sums + (warp * 32 + lane) * MT * 32;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) mine[mt * 32 + nt * 4 + c] = acc[mt][nt][c];
  __syncthreads();
  // Slot (wr, lane, j): the slices' sums added in slice order.
  constexpr int kSlots = WR * 32 * MT * 32;
  for (int slot = threadIdx.x; slot < kSlots; slot += 256) {
    const int j = slot % (MT * 32), l = (slot / (MT * 32)) % 32, r = slot / (MT * 32 * 32);
    float v = 0;
    for (int k = 0; k < WK; ++k) v += sums[((r * WK + k) * 32 + l) * MT * 32 + j];
    const int mt = j / 32, nt = (j / 4) % 8, c = j % 4;
    const int row = blockIdx.x * kRows + r * 16 * MT + mt * 16 + l / 4 + (c >= 2 ? 8 : 0);
    const int token = nt * 8 + 2 * (l % 4) + (c & 1);
    if (row < N && token < T) Y[size_t(token) * N + row] = v;
  }
}


struct Product { const char *name; int K, N; };

int main() {
  int sms = 0; CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaDeviceProp prop; CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs\n", prop.name, sms);
  char *flush; const size_t flushBytes = size_t(256) << 20; CHECK(cudaMalloc(&flush, flushBytes));
  cudaEvent_t e0, e1; CHECK(cudaEventCreate(&e0)); CHECK(cudaEventCreate(&e1));

  auto run = [&](const Product &p, int T, auto kernel, int kRows, int MT, const char *layout) {
    uint16_t *W, *X; float *Y;
    const size_t wn = size_t(p.N) * p.K, xn = size_t(64) * p.K;
    CHECK(cudaMalloc(&W, wn * 2)); CHECK(cudaMalloc(&X, xn * 2)); CHECK(cudaMalloc(&Y, size_t(64) * p.N * 4));
    fillRandomBf16<<<1024, 256>>>(W, wn, 1.0f, 7u + p.N);
    fillRandomBf16<<<256, 256>>>(X, xn, 1.0f, 11u + p.K);
    CHECK(cudaMemset(X + size_t(T) * p.K, 0, (64 - T) * size_t(p.K) * 2));
    CHECK(cudaMemset(Y, 0, size_t(64) * p.N * 4));
    const int blocks = (p.N + kRows - 1) / kRows;
    const size_t shared = size_t(8) * 32 * MT * 32 * 4;
    CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
    kernel<<<blocks, 256, shared>>>(W, X, Y, p.N, T);
    CHECK(cudaDeviceSynchronize());
    // Check 4096 sampled outputs against float64.
    std::vector<uint16_t> w(wn), x(xn); std::vector<float> y(size_t(64) * p.N);
    CHECK(cudaMemcpy(w.data(), W, wn * 2, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(x.data(), X, xn * 2, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(y.data(), Y, y.size() * 4, cudaMemcpyDeviceToHost));
    double worst = 0, largest = 0;
    uint32_t r = 12345;
    for (int i = 0; i < 4096; ++i) {
      r = r * 1664525u + 1013904223u; const int t = int(r % uint32_t(T));
      r = r * 1664525u + 1013904223u; const int n = int(r % uint32_t(p.N));
      double ref = 0;
      for (int k = 0; k < p.K; ++k) ref += double(bf16ToFloat(w[size_t(n) * p.K + k])) * bf16ToFloat(x[size_t(t) * p.K + k]);
      largest = std::max(largest, std::fabs(ref));
      worst = std::max(worst, std::fabs(ref - y[size_t(t) * p.N + n]));
    }
    // Times: L2 emptied before each launch, then back to back.
    std::vector<float> cold;
    for (int i = 0; i < 20; ++i) {
      CHECK(cudaMemsetAsync(flush, i, flushBytes));
      CHECK(cudaEventRecord(e0)); kernel<<<blocks, 256, shared>>>(W, X, Y, p.N, T); CHECK(cudaEventRecord(e1));
      CHECK(cudaEventSynchronize(e1)); float ms; CHECK(cudaEventElapsedTime(&ms, e0, e1)); cold.push_back(ms * 1e3f);
    }
    std::sort(cold.begin(), cold.end());
    CHECK(cudaEventRecord(e0));
    for (int i = 0; i < 20; ++i) kernel<<<blocks, 256, shared>>>(W, X, Y, p.N, T);
    CHECK(cudaEventRecord(e1)); CHECK(cudaEventSynchronize(e1));
    float ms; CHECK(cudaEventElapsedTime(&ms, e0, e1));
    const double mb = wn * 2 / 1e6;
    std::printf("%-8s T=%2d K=%5d N=%5d %-22s %4d blocks: worst %.1e of %.3g; L2 emptied %6.1f us (%.2f TB/s), "
                "back to back %6.1f us (%.2f TB/s)\n",
                p.name, T, p.K, p.N, layout, blocks, worst / largest, largest, cold[10], mb / cold[10],
                ms * 1e3 / 20, mb / (ms * 1e3 / 20));
    CHECK(cudaFree(W)); CHECK(cudaFree(X)); CHECK(cudaFree(Y));
  };
  const Product qkv{"q/k/v", 2048, 3072}, o{"output", 2048, 2048}, gateUp{"gate/up", 2048, 16384},
      down{"down", 8192, 2048};
  for (int T : {64, 32}) {
    for (const Product &p : {qkv, o, gateUp}) {
      run(p, T, skinny<2048, 1, 8, 1>, 16, 1, "16 rows, 8 slices");
      run(p, T, skinny<2048, 1, 8, 2>, 32, 2, "32 rows, 8 slices");
      run(p, T, skinny<2048, 2, 4, 2>, 64, 2, "64 rows, 4 slices");
      run(p, T, skinny<2048, 4, 2, 2>, 128, 2, "128 rows, 2 slices");
    }
    run(down, T, skinny<8192, 1, 8, 1>, 16, 1, "16 rows, 8 slices");
    run(down, T, skinny<8192, 1, 8, 2>, 32, 2, "32 rows, 8 slices");
    run(down, T, skinny<8192, 2, 4, 2>, 64, 2, "64 rows, 4 slices");
  }
  return 0;
}
