// Whether integer dot products would lift the single-token products of INT4
// weights off the instruction bound: one warp per row of symmetric INT4
// groups of 32 in the CUDA target's lane layout (CudaWeightLayouts.h: spans
// of 1024 values, 32 lanes x 16 bytes of codes, then 16 bytes of scales per
// 4 lanes), the Llama-3.2-1B shape's gate/up (16384 x 2048) and down (2048
// x 8192) products, against an input row in shared memory:
//   float: the codes made floats by the exponent trick and summed against
//          float inputs, as CudaProducts.cuh's row stream does (about 36
//          instructions a word of 8 codes);
//   int8:  the input quantized per group of 32 to int8 (scale max|x| / 127,
//          round to nearest even, as the CPU's --int8-activations kernels),
//          a word's 8 codes summed by two dp4a (about 11 instructions).
// Each warp walks its rows with the next row's loads in flight, 2 blocks of
// 256 threads an SM, as the generated code does. Prints each kernel's time
// per launch (CUDA events over 200 launches), its share of the card's read
// bandwidth, and each result's error against a float64 reference of the
// same weights and unrounded inputs. A measurement to decide a design; not
// part of the build.
//
//   nvcc -O3 -arch=sm_90a -std=c++17 scripts/cuda-gemv-int8.cu -o gemv-int8 && ./gemv-int8
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#define CHECK(x)                                                                       \
  do {                                                                                 \
    cudaError_t e = (x);                                                               \
    if (e != cudaSuccess) {                                                            \
      std::printf("%s: %s\n", #x, cudaGetErrorString(e));                              \
      return 1;                                                                        \
    }                                                                                  \
  } while (0)

constexpr int kGroup = 32, kSpanValues = 1024, kSpanBytes = 512 + 8 * 16;

__device__ inline float warpSum(float v) {
  for (int o = 16; o > 0; o /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Lane l's 16 bytes of codes of a span and its 4 groups' scales, for a
/// unit of two spans (a lane's batch: 2048 values of a row).
struct Span {
  uint4 code;
  float4 scale;
};
constexpr int kUnitSpans = 2;
struct Unit {
  Span span[kUnitSpans];
};
__device__ void loadUnit(const uint8_t *spans, Unit &u) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int s = 0; s < kUnitSpans; ++s) {
    const uint8_t *span = spans + s * kSpanBytes;
    u.span[s].code = __ldg(reinterpret_cast<const uint4 *>(span) + lane);
    u.span[s].scale = __ldg(reinterpret_cast<const float4 *>(span + 512) + lane / 4);
  }
}

/// The float path: CudaProducts.cuh's dotWord<4>.
__device__ inline float dotWord(uint32_t word, const float *x) {
  const uint32_t u = word ^ 0x88888888u;
  auto q = [&](int i) { return __uint_as_float(0x4B000000u | ((u >> (4 * i)) & 15u)) - 8388616.0f; };
  const float4 a = reinterpret_cast<const float4 *>(x)[0];
  const float4 b = reinterpret_cast<const float4 *>(x)[1];
  return q(0) * a.x + q(1) * a.y + q(2) * a.z + q(3) * a.w + q(4) * b.x + q(5) * b.y +
         q(6) * b.z + q(7) * b.w;
}

/// An 8-value chunk of the input quantized: its even values' codes, its
/// odd values' codes (the order of a word's low and high nibbles), 8 times
/// the sum of its codes (the nibbles are read offset by 8), its group's
/// scale. 16 bytes: one shared-memory load a word.
struct Chunk {
  int even, odd, offset;
  float scale;
};

/// The input quantized once for every block (a launch before the product's,
/// or the epilogue of the kernel that writes it): a warp per group of 32
/// values, its scale, then each lane's code, gathered into chunks.
template <int K> __global__ void quantize(const float *xIn, Chunk *out) {
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  for (int g = warp; g < K / kGroup; g += gridDim.x * blockDim.x / 32) {
    const float v = xIn[g * kGroup + lane];
    float m = fabsf(v);
    for (int o = 16; o > 0; o /= 2)
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    const float scale = m / 127.0f;
    const int q = m > 0 ? __float2int_rn(v * (127.0f / m)) : 0;
    // Lane j holds value j of the group: chunk j / 8, byte (j % 8) / 2 of
    // the even or the odd word.
    const int j = lane;
    const uint32_t byte = uint32_t(q & 255) << (8 * ((j % 8) / 2));
    uint32_t even = (j % 2) == 0 ? byte : 0, odd = (j % 2) ? byte : 0;
    int sum = q;
    for (int o = 1; o < 8; o *= 2) { // OR and add within each chunk of 8 lanes
      even |= __shfl_xor_sync(0xffffffffu, even, o);
      odd |= __shfl_xor_sync(0xffffffffu, odd, o);
      sum += __shfl_xor_sync(0xffffffffu, sum, o);
    }
    if (j % 8 == 0)
      out[(g * kGroup + j) / 8] = Chunk{int(even), int(odd), 8 * sum, scale};
  }
}

template <int K, bool Int8, int kBlocksPerSm>
__global__ void __launch_bounds__(256, kBlocksPerSm)
    gemv(const uint8_t *w, const float *xIn, const Chunk *quantized, float *y, int rows) {
  __shared__ float x[Int8 ? 1 : K];
  __shared__ Chunk chunks[Int8 ? K / 8 : 1];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int first = blockIdx.x * 8 + warp, stride = gridDim.x * 8;
  constexpr int64_t kRowBytes = K / kSpanValues * kSpanBytes;
  constexpr int kUnitsPerRow = K / (kUnitSpans * kSpanValues);
  // Unit u: part u % kUnitsPerRow of the warp's row u / kUnitsPerRow.
  const int units = first < rows ? (rows - first + stride - 1) / stride * kUnitsPerRow : 0;
  auto unitAt = [&](int u) {
    return w + int64_t(first + u / kUnitsPerRow * stride) * kRowBytes +
           (u % kUnitsPerRow) * kUnitSpans * kSpanBytes;
  };
  Unit cur, next;
  if (units > 0)
    loadUnit(unitAt(0), cur);
  if constexpr (Int8) {
    for (int i = threadIdx.x; i < K / 8; i += 256)
      chunks[i] = quantized[i];
  } else {
    for (int k = threadIdx.x; k < K; k += 256)
      x[k] = xIn[k];
  }
  __syncthreads();
  float acc = 0;
  for (int u = 0; u < units; ++u) {
    if (u + 1 < units)
      loadUnit(unitAt(u + 1), next);
#pragma unroll
    for (int s = 0; s < kUnitSpans; ++s) {
      const uint32_t code[4] = {cur.span[s].code.x, cur.span[s].code.y, cur.span[s].code.z,
                                cur.span[s].code.w};
      const float scale[4] = {cur.span[s].scale.x, cur.span[s].scale.y, cur.span[s].scale.z,
                              cur.span[s].scale.w};
#pragma unroll
      for (int word = 0; word < 4; ++word) {
        // The word's first value in the row.
        const int at = ((u % kUnitsPerRow) * kUnitSpans + s) * kSpanValues + (word * 32 + lane) * 8;
        if constexpr (Int8) {
          const Chunk c = chunks[at / 8];
          const uint32_t q = code[word] ^ 0x88888888u; // nibbles q + 8
          const int dot = __dp4a(int((q >> 4) & 0x0F0F0F0Fu), c.odd,
                                 __dp4a(int(q & 0x0F0F0F0Fu), c.even, -c.offset));
          acc += scale[word] * c.scale * float(dot);
        } else {
          acc += scale[word] * dotWord(code[word], x + at);
        }
      }
    }
    if (u % kUnitsPerRow == kUnitsPerRow - 1) {
      const float sum = warpSum(acc);
      acc = 0;
      if (lane == 0)
        y[first + u / kUnitsPerRow * stride] = sum;
    }
    cur = next;
  }
}

template <int K> int run(const char *name, int rows, double bandwidth) {
  const int64_t rowBytes = K / kSpanValues * kSpanBytes;
  std::mt19937 rng(1);
  std::vector<uint8_t> w(size_t(rows) * rowBytes);
  std::vector<float> x(K);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = uint8_t(rng());
  // Scales: a small positive float for every group.
  for (int r = 0; r < rows; ++r)
    for (int s = 0; s < K / kSpanValues; ++s)
      for (int i = 0; i < 32; ++i) {
        const float v = 0.01f + 0.001f * float(rng() % 100);
        std::memcpy(&w[r * rowBytes + s * kSpanBytes + 512 + 4 * i], &v, 4);
      }
  for (float &v : x)
    v = normal(rng);
  // The reference: float64 sums of code * scale * x.
  std::vector<double> reference(rows);
  for (int r = 0; r < rows; ++r) {
    double sum = 0;
    for (int k = 0; k < K; ++k) {
      const int s = k / kSpanValues, in = k % kSpanValues, word = in / 256, lane = in % 256 / 8,
                j = k % 8;
      const uint8_t *span = &w[r * rowBytes + s * kSpanBytes];
      uint32_t code;
      float scale;
      std::memcpy(&code, span + lane * 16 + word * 4, 4);
      std::memcpy(&scale, span + 512 + (lane / 4) * 16 + word * 4, 4);
      const int q = int(((code >> (4 * j)) & 15u) ^ 8u) - 8;
      sum += double(q) * scale * x[k];
    }
    reference[r] = sum;
  }
  uint8_t *dw;
  float *dx, *dy;
  CHECK(cudaMalloc(&dw, w.size()));
  CHECK(cudaMalloc(&dx, K * 4));
  CHECK(cudaMalloc(&dy, rows * 4));
  CHECK(cudaMemcpy(dw, w.data(), w.size(), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dx, x.data(), K * 4, cudaMemcpyHostToDevice));
  Chunk *dq;
  CHECK(cudaMalloc(&dq, K / 8 * sizeof(Chunk)));
  quantize<K><<<K / kGroup / 8, 256>>>(dx, dq);
  for (int variant = 0; variant < 4; ++variant) {
    const char *label[4] = {"float 2", "int8 2", "float 4", "int8 4"};
    auto launch = [&] {
      switch (variant) {
      case 0: gemv<K, false, 2><<<2 * 132, 256>>>(dw, dx, dq, dy, rows); break;
      case 1: gemv<K, true, 2><<<2 * 132, 256>>>(dw, dx, dq, dy, rows); break;
      case 2: gemv<K, false, 4><<<4 * 132, 256>>>(dw, dx, dq, dy, rows); break;
      default: gemv<K, true, 4><<<4 * 132, 256>>>(dw, dx, dq, dy, rows); break;
      }
    };
    launch();
    CHECK(cudaDeviceSynchronize());
    std::vector<float> y(rows);
    CHECK(cudaMemcpy(y.data(), dy, rows * 4, cudaMemcpyDeviceToHost));
    double err = 0, norm = 0;
    for (int r = 0; r < rows; ++r) {
      err += (y[r] - reference[r]) * (y[r] - reference[r]);
      norm += reference[r] * reference[r];
    }
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    cudaEventRecord(a);
    for (int i = 0; i < 200; ++i)
      launch();
    cudaEventRecord(b);
    CHECK(cudaEventSynchronize(b));
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    const double us = ms * 1000.0 / 200, bytes = double(rows) * rowBytes;
    std::printf("%-8s %-8s %8.2f us  %6.2f TB/s (%4.1f%% of %.2f)  relative error %.2e\n", name,
                label[variant], us, bytes / us * 1e-6, 100 * bytes / us * 1e-6 / bandwidth,
                bandwidth, std::sqrt(err / norm));
  }
  cudaFree(dw);
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(dq);
  return 0;
}

int main() {
  // (the quantize launch itself: about a microsecond, a block per 8 groups)
  const double bandwidth = 4.1; // TB/s, the H200's measured read bandwidth
  if (run<2048>("gate/up", 16384, bandwidth) || run<8192>("down", 2048, bandwidth))
    return 1;
  return 0;
}
