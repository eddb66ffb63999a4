// The GPU's compressed KV encoder (KvBlockEncoder in
// runtime/backends/cuda/kernels/CudaElementwise.cuh: the store step of an
// int8/bfp8/bfp4 cache and the sealing of a windowed one) against the CPU's
// codec (formats::encodeKvRow), byte for byte, on every block shape the
// encoder takes (blocks of fewer than 32 values, of 32, of more and of
// sizes that are no power of two) and on blocks made to catch it out:
// values at the codes' rounding halfway points, zeros, subnormals, values
// near FLT_MAX (int8's scale lowered an ulp), NaN and infinity, and random
// blocks of magnitudes from 2^-140 to 2^120. The attention kernels decode
// what the CPU's codec writes (CudaBackendTest checks their outputs
// against the CPU), so a byte written otherwise is a defect even where the
// logits hide it. From the repository root, with nvcc:
//   nvcc -std=c++20 -O2 -gencode arch=compute_90a,code=sm_90a -I . \
//     scripts/cuda-kv-encode-check.cu runtime/formats/KvFormat.cpp \
//     runtime/formats/Bfp.cpp runtime/formats/IntGroup.cpp -o kv-encode-check
// (scripts/cuda-check.sh runs it when .device/bin holds it.) Exits 1 on
// any difference, naming the first.
#include "runtime/backends/cuda/kernels/LatheCudaKernels.cuh"
#include "runtime/formats/KvFormat.h"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using namespace lathe_cuda;
namespace formats = lathe::formats;

#define CK(x)                                                                                      \
  do {                                                                                             \
    cudaError_t e = (x);                                                                           \
    if (e != cudaSuccess) {                                                                        \
      fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e));                   \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

/// Block b of x to out + b * (header + codes), as encodeKvRow lays blocks
/// out: a warp a block.
template <bool Int8, int Bits, int Block>
__global__ void encodeBlocks(const float *x, uint8_t *out, int blocks) {
  using E = KvBlockEncoder<Int8, Bits, Block>;
  constexpr int header = Int8 ? 4 : 1, bytes = header + Block * Bits / 8;
  const int warps = int(gridDim.x * blockDim.x) / 32;
  for (int b = int(blockIdx.x * blockDim.x + threadIdx.x) / 32; b < blocks; b += warps)
    E::store(E::load(x + int64_t(b) * Block), out + int64_t(b) * bytes,
             out + int64_t(b) * bytes + header);
}

/// Blocks of `block` values that each try one way of catching the encoder
/// out (block i takes case i % 8), `count` of them.
std::vector<float> testBlocks(int block, int bits, bool int8, int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-140, 120);
  std::vector<float> x(size_t(count) * block);
  const int qmax = int8 ? 127 : (1 << (bits - 1)) - 1;
  for (int b = 0; b < count; ++b) {
    float *v = x.data() + size_t(b) * block;
    const float scale = std::ldexp(1.0f, exponent(rng));
    for (int i = 0; i < block; ++i)
      v[i] = normal(rng) * scale;
    switch (b % 8) {
    case 0: // random, one scale
      break;
    case 1: // codes' halfway points: q + 0.5 steps of the block's grid
      if (!int8) {
        const float step = std::ldexp(1.0f, -(bits - 2));
        v[0] = std::ldexp(1.0f, 0) * 1.75f; // sets the exponent to 0
        for (int i = 1; i < block; ++i)
          v[i] = (float(int(rng() % (2 * qmax + 1)) - qmax) + 0.5f) * step;
      } else {
        v[0] = 127.0f; // scale exactly 1
        for (int i = 1; i < block; ++i)
          v[i] = float(int(rng() % 254) - 127) + 0.5f; // -126.5 .. 126.5
      }
      break;
    case 2: // zeros, and a block of one nonzero value
      for (int i = 0; i < block; ++i)
        v[i] = 0.0f;
      if (b % 16 == 10)
        v[rng() % block] = -std::ldexp(1.0f, -130);
      break;
    case 3: // subnormals and their neighbours
      for (int i = 0; i < block; ++i)
        v[i] = normal(rng) * std::ldexp(1.0f, -130 - int(rng() % 16));
      break;
    case 4: // near FLT_MAX
      for (int i = 0; i < block; ++i)
        v[i] = normal(rng) * 1e37f;
      v[rng() % block] = (rng() % 2 ? 1 : -1) * FLT_MAX;
      break;
    case 5: // a NaN or infinity among the values
      v[rng() % block] = rng() % 2 ? NAN : (rng() % 2 ? INFINITY : -INFINITY);
      break;
    case 6: // one large value, the rest far below it (codes that saturate to 0)
      v[rng() % block] = scale * 4096.0f;
      break;
    case 7: // the largest magnitude on both signs, exact powers of two
      v[0] = -scale;
      v[block - 1] = scale;
      break;
    }
  }
  return x;
}

template <bool Int8, int Bits, int Block> bool check(formats::KvKind kind, const char *name) {
  constexpr int header = Int8 ? 4 : 1, bytes = header + Block * Bits / 8;
  const int count = 8 * 4096 + 3;
  const std::vector<float> x = testBlocks(Block, Bits, Int8, count, 1234u + Block * 7 + Bits);
  float *dx;
  uint8_t *dout;
  CK(cudaMalloc(&dx, x.size() * sizeof(float)));
  CK(cudaMalloc(&dout, size_t(count) * bytes));
  CK(cudaMemcpy(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemset(dout, 0xA5, size_t(count) * bytes));
  encodeBlocks<Int8, Bits, Block><<<264, 256>>>(dx, dout, count);
  CK(cudaGetLastError());
  std::vector<uint8_t> got(size_t(count) * bytes), want(size_t(count) * bytes);
  CK(cudaMemcpy(got.data(), dout, got.size(), cudaMemcpyDeviceToHost));
  CK(cudaFree(dx));
  CK(cudaFree(dout));
  const formats::KvFormat format{kind, Block, 0, 0};
  if (formats::kvBlockBytes(format) != size_t(bytes)) {
    printf("%s block %d: the CPU's blocks are %zu bytes, the check's %d\n", name, Block,
           formats::kvBlockBytes(format), bytes);
    return false;
  }
  formats::encodeKvRow(format, {x.data(), x.size()}, want.data());
  for (int b = 0; b < count; ++b)
    if (memcmp(got.data() + size_t(b) * bytes, want.data() + size_t(b) * bytes, bytes) != 0) {
      printf("%s block %d: block %d (case %d) differs\n  values:", name, Block, b, b % 8);
      for (int i = 0; i < Block && i < 8; ++i)
        printf(" %a", x[size_t(b) * Block + i]);
      printf("\n  gpu:");
      for (int i = 0; i < bytes; ++i)
        printf(" %02x", got[size_t(b) * bytes + i]);
      printf("\n  cpu:");
      for (int i = 0; i < bytes; ++i)
        printf(" %02x", want[size_t(b) * bytes + i]);
      printf("\n");
      return false;
    }
  printf("%s block %d: %d blocks equal to the CPU's codec\n", name, Block, count);
  return true;
}

int main() {
  using formats::KvKind;
  bool ok = true;
  ok &= check<true, 8, 48>(KvKind::Int8, "int8");
  ok &= check<true, 8, 64>(KvKind::Int8, "int8");
  ok &= check<true, 8, 128>(KvKind::Int8, "int8");
  ok &= check<false, 8, 16>(KvKind::Bfp8, "bfp8");
  ok &= check<false, 8, 32>(KvKind::Bfp8, "bfp8");
  ok &= check<false, 8, 64>(KvKind::Bfp8, "bfp8");
  ok &= check<false, 8, 24>(KvKind::Bfp8, "bfp8");
  ok &= check<false, 4, 6>(KvKind::Bfp4, "bfp4");
  ok &= check<false, 4, 16>(KvKind::Bfp4, "bfp4");
  ok &= check<false, 4, 32>(KvKind::Bfp4, "bfp4");
  ok &= check<false, 4, 48>(KvKind::Bfp4, "bfp4");
  ok &= check<false, 4, 64>(KvKind::Bfp4, "bfp4");
  ok &= check<false, 4, 128>(KvKind::Bfp4, "bfp4");
  printf(ok ? "kv encode check: passed\n" : "kv encode check: FAILED\n");
  return ok ? 0 : 1;
}
