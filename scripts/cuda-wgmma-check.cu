// The wgmma tiles (runtime/backends/cuda/kernels/CudaWgmmaTiles.cuh)
// against the mma.sync staged tiles they replace (CudaStagedTiles.cuh), on
// the Llama-3.2-1B shape's prefill products (gate/up, down, q/k/v, output)
// for 2048, 1024, 512 and 200 tokens: each kernel's output against a
// float64 reference of the same bf16 operands (relative L2 and the worst
// difference), and its time (mean of 20 launches, cudaEvent) and TFLOPS.
// Kinds: "staged" (128 rows by 64 tokens a block), "wg128" and "wg64"
// (wgmma blocks of 128 or 64 tokens, forced, in the grid's order), "autoN"
// (the block the runtime picks, LATHE_CUDA_WGMMA_TOKENS, in the order it
// picks, wgmmaBlockIndex). The token rows come from the
// runtime's own splitTokens, as in a prompt step. From the repository root:
//   nvcc -std=c++20 -O3 -arch=sm_90a -I . scripts/cuda-wgmma-check.cu -o wgmma-check && ./wgmma-check
#include "runtime/backends/cuda/kernels/LatheCudaKernels.cuh"
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cmath>
using namespace lathe_cuda;
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)

template <int K> __global__ void __launch_bounds__(256) split(const LatheCudaFrame *fr) {
  splitTokens<K, false>(*fr, 0, Bf16Input<PlainInput>{});
}
template <int K, int N, bool Gated, int Tokens> __global__ void __launch_bounds__(256, 1) wg(const LatheCudaFrame *fr) {
  const LatheCudaFrame &f = *fr;
  const WgmmaBlockIndex b = wgmmaBlockIndex(); // the runtime's order (Tokens 0)
  if constexpr (Gated) {
    GatedRows<BF16, BF16, K, N, 2 * K, 2 * K> r{f.weights[0], f.weights[1], f.buffers[1]};
    if constexpr (Tokens == 0) wgmmaProduct<K, false>(f, r, b.x, b.y); else wgmmaBlock<K, false, Tokens>(f, r, blockIdx.x, blockIdx.y);
  } else {
    PlainRows<BF16, K, N, 2 * K, false> r{f.weights[0], f.buffers[1], nullptr};
    if constexpr (Tokens == 0) wgmmaProduct<K, false>(f, r, b.x, b.y); else wgmmaBlock<K, false, Tokens>(f, r, blockIdx.x, blockIdx.y);
  }
}
template <int K, int N, bool Gated> __global__ void __launch_bounds__(256, 1) st(const LatheCudaFrame *fr) {
  const LatheCudaFrame &f = *fr;
  if constexpr (Gated)
    stagedProduct<K, false>(f, GatedRows<BF16, BF16, K, N, 2 * K, 2 * K>{f.weights[0], f.weights[1], f.buffers[1]}, blockIdx.x);
  else
    stagedProduct<K, false>(f, PlainRows<BF16, K, N, 2 * K, false>{f.weights[0], f.buffers[1], nullptr}, blockIdx.x);
}
// Reference: y[t, n] in double of bf16(x) * w.
template <int K, int N, bool Gated> __global__ void ref(const float *x, const __nv_bfloat16 *w, const __nv_bfloat16 *u, float *y, int T) {
  int n = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
  if (n >= N || t >= T) return;
  double s = 0, su = 0;
  for (int k = 0; k < K; ++k) {
    double xv = __bfloat162float(__float2bfloat16_rn(x[int64_t(t) * K + k]));
    s += xv * __bfloat162float(w[int64_t(n) * K + k]);
    if (Gated) su += xv * __bfloat162float(u[int64_t(n) * K + k]);
  }
  y[int64_t(t) * N + n] = Gated ? float(s / (1 + exp(-s)) * su) : float(s);
}

template <int K, int N, bool Gated> void run(int T, const char *name) {
  std::vector<float> hx(size_t(T) * K);
  std::vector<__nv_bfloat16> hw(size_t(N) * K), hu(size_t(N) * K);
  srand(1);
  for (auto &v : hx) v = (rand() / float(RAND_MAX) - 0.5f) * 2;
  for (auto &v : hw) v = __float2bfloat16((rand() / float(RAND_MAX) - 0.5f) * 0.1f);
  for (auto &v : hu) v = __float2bfloat16((rand() / float(RAND_MAX) - 0.5f) * 0.1f);
  float *x, *y, *yr; __nv_bfloat16 *w, *u; uint32_t *parts;
  const int rounded = (T + 127) / 128 * 128;
  CK(cudaMalloc(&x, hx.size() * 4)); CK(cudaMalloc(&y, size_t(rounded) * N * 4)); CK(cudaMalloc(&yr, size_t(T) * N * 4));
  CK(cudaMalloc(&w, hw.size() * 2)); CK(cudaMalloc(&u, hu.size() * 2));
  CK(cudaMalloc(&parts, size_t(rounded) * K * 6));
  CK(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(w, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(u, hu.data(), hu.size() * 2, cudaMemcpyHostToDevice));
  float **bufs; const uint8_t **wts; LatheCudaFrame *fr;
  CK(cudaMallocManaged(&bufs, 16 * 8)); CK(cudaMallocManaged(&wts, 16 * 8)); CK(cudaMallocManaged(&fr, sizeof(LatheCudaFrame)));
  bufs[0] = x; bufs[1] = y; wts[0] = (const uint8_t *)w; wts[1] = (const uint8_t *)u;
  memset(fr, 0, sizeof(*fr));
  fr->buffers = bufs; fr->weights = wts; fr->tokenParts = parts; fr->rows = T; fr->logitCount = T;
  split<K><<<dim3(rounded, (K + 1023) / 1024), 256>>>(fr);
  CK(cudaDeviceSynchronize());
  ref<K, N, Gated><<<dim3((N + 127) / 128, T), 128>>>(x, w, u, yr, T);
  CK(cudaDeviceSynchronize());
  std::vector<float> want(size_t(T) * N), got(size_t(T) * N);
  CK(cudaMemcpy(want.data(), yr, want.size() * 4, cudaMemcpyDeviceToHost));
  auto check = [&](const char *kind, auto launch) {
    CK(cudaMemset(y, 0, size_t(T) * N * 4));
    launch(); CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got.data(), y, got.size() * 4, cudaMemcpyDeviceToHost));
    double e2 = 0, r2 = 0, worst = 0;
    for (size_t i = 0; i < got.size(); ++i) { double d = got[i] - want[i]; e2 += d * d; r2 += double(want[i]) * want[i]; worst = fmax(worst, fabs(d)); }
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    for (int i = 0; i < 3; ++i) launch();
    cudaEventRecord(a); for (int i = 0; i < 20; ++i) launch(); cudaEventRecord(b); CK(cudaEventSynchronize(b));
    float ms; cudaEventElapsedTime(&ms, a, b); ms /= 20;
    double flops = 2.0 * T * K * N * (Gated ? 2 : 1);
    printf("%-8s %-7s T=%5d K=%5d N=%5d: rel L2 %.2e worst %.2e  %8.1f us  %6.1f TFLOPS\n", name, kind, T, K, N, sqrt(e2 / r2), worst, ms * 1e3, flops / ms / 1e9);
  };
  check("staged", [&] { st<K, N, Gated><<<dim3(N / 128, (T + 63) / 64), 256>>>(fr); });
  const int rows = LATHE_CUDA_WGMMA_ROWS(Gated), gx = (N + rows - 1) / rows;
  CK(cudaFuncSetAttribute(wg<K, N, Gated, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize, kWgmmaSharedBytes));
  CK(cudaFuncSetAttribute(wg<K, N, Gated, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize, kWgmmaSharedBytes));
  CK(cudaFuncSetAttribute(wg<K, N, Gated, 0>, cudaFuncAttributeMaxDynamicSharedMemorySize, kWgmmaSharedBytes));
  check("wg128", [&] { wg<K, N, Gated, 128><<<dim3(gx, (T + 127) / 128), 256, kWgmmaSharedBytes>>>(fr); });
  check("wg64", [&] { wg<K, N, Gated, 64><<<dim3(gx, (T + 63) / 64), 256, kWgmmaSharedBytes>>>(fr); });
  const int bt = LATHE_CUDA_WGMMA_TOKENS(gx, T);
  char kind[16]; snprintf(kind, 16, "auto%d", bt);
  check(kind, [&] { wg<K, N, Gated, 0><<<dim3(gx, (T + bt - 1) / bt), 256, kWgmmaSharedBytes>>>(fr); });
  cudaFree(x); cudaFree(y); cudaFree(yr); cudaFree(w); cudaFree(u); cudaFree(parts);
}

int main() {
  for (int T : {2048, 1024, 512, 200}) {
    run<2048, 8192, true>(T, "gate/up");
    run<8192, 2048, false>(T, "down");
    run<2048, 3072, false>(T, "qkv");
    run<2048, 2048, false>(T, "o");
  }
}
