// Seeded random bf16 weights for the stand-alone CUDA measures in scripts/
// (cuda-persistent-chain.cu, cuda-skinny-check.cu): uniform in [-a, a],
// each value a hash of its index and the seed, rounded toward zero to bf16.
#pragma once
#include <cstdint>
#include <cstring>

__global__ void fillRandomBf16(uint16_t *w, size_t n, float a, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ uint32_t(i >> 32) * 40503u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
    const float v = (float(h >> 8) / 16777216.0f * 2 - 1) * a;
    w[i] = uint16_t(__float_as_uint(v) >> 16);
  }
}

inline float bf16ToFloat(uint16_t v) {
  const uint32_t u = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
