// The wgmma tiles (runtime/backends/cuda/kernels/CudaWgmmaTiles.cuh: weights
// and token rows loaded by TMA) against the mma.sync staged tiles
// (CudaStagedTiles.cuh) and cuBLAS, on the Llama-3.2-1B shape's prefill
// products (gate/up, down, q/k/v, output) for 2048, 512 and 200 tokens,
// and 64, 32 and 20 (a batch of decoding sequences, a token tree: blocks
// of 64 tokens, k split over the idle SMs as the runtime splits it):
// each kernel's output against a float64 reference of the same bf16
// operands (relative L2 and the worst difference), and its time (mean of
// 20 launches, cudaEvent) and TFLOPS. Kinds: "staged" (128 rows by 64
// tokens a block), "wgmma" (blocks of 128 rows, the runtime's order and
// token blocks), "wgmma2" (pairs of 128-row tiles, LATHE_CUDA_WGMMA_PAIRED),
// "cublas" (cublasGemmEx, bf16 in, float out; gate and up as one product
// of both, without SwiGLU). The staged tiles read the split rows in the
// narrow tiles' fragment order, the wgmma ones the same rows row-major
// (RowsFrom), both written by the runtime's splitTokens. From
// the repository root:
//   nvcc -std=c++20 -O3 -gencode arch=compute_90a,code=sm_90a -I . \
//     scripts/cuda-wgmma-check.cu -o wgmma-check -lcublas -lcuda && ./wgmma-check
#include "runtime/backends/cuda/kernels/LatheCudaKernels.cuh"
#include <cublas_v2.h>
#include <cuda.h>
#include <cudaTypedefs.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
using namespace lathe_cuda;
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)

// RowsFrom 1: row-major from one token on (as before a wgmma launch).
template <int K, int RowsFrom> __global__ void __launch_bounds__(256) split(const LatheCudaFrame *fr) {
  splitTokens<K, false, false, RowsFrom>(*fr, 0, Bf16Input<PlainInput>{});
}
// Tiles 1 or 2: the runtime's block of one or two 128-row tiles.
template <int K, int N, bool Gated, int Tiles> __global__ void __launch_bounds__(384, 1) wg(const LatheCudaFrame *fr) {
  const LatheCudaFrame &f = *fr;
  const WgmmaBlockIndex b = wgmmaBlockIndex();
  if constexpr (Gated) {
    GatedRows<BF16, BF16, K, N, 2 * K, 2 * K> r{f.weights[0], f.weights[1], f.buffers[1]};
    wgmmaProduct<K, false>(f, r, {{tensorMap(f, 0), tensorMap(f, 1)}, tokenMap(f, 0)}, b.x, b.y);
  } else {
    PlainRows<BF16, K, N, 2 * K, false> r{f.weights[0], f.buffers[1], nullptr};
    wgmmaProduct<K, false, Tiles>(f, r, {{tensorMap(f, 0), tensorMap(f, 0)}, tokenMap(f, 0)}, b.x, b.y);
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

static PFN_cuTensorMapEncodeTiled_v12000 encode;
// The runtime's maps (CudaExecutable's encodeWeightMaps, encodeTokenMaps).
static CUtensorMap map2d(const void *p, int k, int rows, int boxRows) {
  CUtensorMap m;
  cuuint64_t dims[2] = {cuuint64_t(k), cuuint64_t(rows)}, strides[1] = {cuuint64_t(k) * 2};
  cuuint32_t box[2] = {LATHE_CUDA_TMA_BOX_K, cuuint32_t(boxRows)}, es[2] = {1, 1};
  if (encode(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void *>(p), dims, strides, box, es,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) {
    printf("cuTensorMapEncodeTiled failed\n");
    exit(1);
  }
  return m;
}
static cublasHandle_t handle;

template <int K, int N, bool Gated> void run(int T, const char *name) {
  std::vector<float> hx(size_t(T) * K);
  std::vector<__nv_bfloat16> hw(size_t(N) * K * 2);
  srand(1);
  for (auto &v : hx) v = (rand() / float(RAND_MAX) - 0.5f) * 2;
  for (auto &v : hw) v = __float2bfloat16((rand() / float(RAND_MAX) - 0.5f) * 0.1f);
  float *x, *y, *yr; __nv_bfloat16 *w; uint32_t *parts, *rowsMajor;
  const int rounded = (T + 127) / 128 * 128;
  CK(cudaMalloc(&x, hx.size() * 4)); CK(cudaMalloc(&y, size_t(rounded) * N * 4 * 2)); CK(cudaMalloc(&yr, size_t(T) * N * 4));
  CK(cudaMalloc(&w, hw.size() * 2));
  CK(cudaMalloc(&parts, size_t(rounded) * K * 6)); CK(cudaMalloc(&rowsMajor, size_t(rounded) * K * 6));
  const __nv_bfloat16 *u = w + size_t(N) * K;
  CK(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(w, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice));
  float **bufs; const uint8_t **wts; LatheCudaFrame *fr;
  CK(cudaMallocManaged(&bufs, 16 * 8)); CK(cudaMallocManaged(&wts, 16 * 8)); CK(cudaMallocManaged(&fr, sizeof(LatheCudaFrame)));
  bufs[0] = x; bufs[1] = y; wts[0] = (const uint8_t *)w; wts[1] = (const uint8_t *)u;
  memset(fr, 0, sizeof(*fr));
  fr->buffers = bufs; fr->weights = wts; fr->rows = T; fr->logitCount = T;
  // The split rows: fragment order for the staged tiles, row-major for wgmma.
  fr->tokenParts = rowsMajor;
  split<K, 1><<<dim3(rounded, (K + 1023) / 1024), 256>>>(fr);
  CK(cudaDeviceSynchronize());
  fr->tokenParts = parts;
  split<K, 0><<<dim3(rounded, (K + 1023) / 1024), 256>>>(fr);
  CK(cudaDeviceSynchronize());
  CUtensorMap maps[3] = {map2d(w, K, N, LATHE_CUDA_TMA_BOX_ROWS), map2d(u, K, N, LATHE_CUDA_TMA_BOX_ROWS),
                         map2d(rowsMajor, K, rounded, LATHE_CUDA_TMA_BOX_TOKENS)};
  uint8_t *deviceMaps;
  CK(cudaMalloc(&deviceMaps, sizeof(maps)));
  CK(cudaMemcpy(deviceMaps, maps, sizeof(maps), cudaMemcpyHostToDevice));
  fr->weightMaps = deviceMaps;
  fr->tokenMaps = deviceMaps + 2 * sizeof(CUtensorMap);
  ref<K, N, Gated><<<dim3((N + 127) / 128, T), 128>>>(x, w, u, yr, T);
  CK(cudaDeviceSynchronize());
  std::vector<float> want(size_t(T) * N), got(size_t(T) * N);
  CK(cudaMemcpy(want.data(), yr, want.size() * 4, cudaMemcpyDeviceToHost));
  const double flops = 2.0 * T * K * N * (Gated ? 2 : 1);
  auto check = [&](const char *kind, auto launch, bool verify) {
    CK(cudaMemset(y, 0, size_t(T) * N * 4));
    launch(); CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
    double e2 = 0, r2 = 0, worst = 0;
    if (verify) {
      CK(cudaMemcpy(got.data(), y, got.size() * 4, cudaMemcpyDeviceToHost));
      for (size_t i = 0; i < got.size(); ++i) { double d = got[i] - want[i]; e2 += d * d; r2 += double(want[i]) * want[i]; worst = fmax(worst, fabs(d)); }
    }
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    for (int i = 0; i < 3; ++i) launch();
    cudaEventRecord(a); for (int i = 0; i < 20; ++i) launch(); cudaEventRecord(b); CK(cudaEventSynchronize(b));
    float ms; cudaEventElapsedTime(&ms, a, b); ms /= 20;
    if (verify)
      printf("%-8s %-7s T=%5d K=%5d N=%5d: rel L2 %.2e worst %.2e  %8.1f us  %6.1f TFLOPS\n", name, kind, T, K, N,
             sqrt(e2 / r2), worst, ms * 1e3, flops / ms / 1e9);
    else
      printf("%-8s %-7s T=%5d K=%5d N=%5d: %37s %8.1f us  %6.1f TFLOPS\n", name, kind, T, K, N, "", ms * 1e3, flops / ms / 1e9);
  };
  check("staged", [&] { st<K, N, Gated><<<dim3(N / 128, (T + 63) / 64), 256>>>(fr); }, true);
  auto wgmma = [&](auto tilesTag, const char *kind) {
    constexpr int Tiles = decltype(tilesTag)::value;
    auto kernel = wg<K, N, Gated, Tiles>;
    CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kWgmmaSharedBytes));
    const int gx = (N + 128 * Tiles - 1) / (128 * Tiles), bt = LATHE_CUDA_WGMMA_TOKENS(gx, T);
    const int gy = (T + bt - 1) / bt;
    // 64-token blocks too few to fill the GPU split their k on z, as the
    // host schedule splits them (CudaScheduleAbi.h).
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const int gz = bt == 64 ? std::min(LATHE_CUDA_WGMMA_SPLITS(gx * gy, sms), K / kWgmmaStageK) : 1;
    check(kind, [&] { kernel<<<dim3(gx, gy, gz), LATHE_CUDA_WGMMA_THREADS, kWgmmaSharedBytes>>>(fr); }, true);
  };
  wgmma(std::integral_constant<int, 1>{}, "wgmma");
  if constexpr (!Gated)
    wgmma(std::integral_constant<int, 2>{}, "wgmma2");
  __nv_bfloat16 *xb; CK(cudaMalloc(&xb, size_t(T) * K * 2));
  CK(cudaMemcpy(xb, rowsMajor, size_t(T) * K * 2, cudaMemcpyDeviceToDevice));
  const float one = 1, zero = 0;
  const int n = Gated ? 2 * N : N; // gate and up as one product, without SwiGLU
  check("cublas", [&] {
    cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, T, K, &one, w, CUDA_R_16BF, K, xb, CUDA_R_16BF, K, &zero, y,
                 CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }, false);
  cudaFree(x); cudaFree(y); cudaFree(yr); cudaFree(w); cudaFree(parts); cudaFree(rowsMajor); cudaFree(xb);
  cudaFree(deviceMaps);
}

int main() {
  cudaDriverEntryPointQueryResult q;
  CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", reinterpret_cast<void **>(&encode), 12000,
                                      cudaEnableDefault, &q));
  cublasCreate(&handle);
  for (int T : {2048, 512, 200, 64, 32, 20}) {
    run<2048, 8192, true>(T, "gate/up");
    run<8192, 2048, false>(T, "down");
    run<2048, 3072, false>(T, "qkv");
    run<2048, 2048, false>(T, "o");
  }
}
