// The CPU kernels' SIMD exp (ExpF32-inl.h, through simd::expF32) bit for bit
// equal to lathe_exp_f32 of runtime/kernels/Transcendentals.h on every
// Highway target this machine runs: the CPU softmax uses the one, the
// reference kernels and the HLS kernels the other.
#include "runtime/backends/cpu/kernels/ExpF32.h"

#include "runtime/kernels/Transcendentals.h"
#include "test/unit/runtime/backends/cpu/kernels/SimdTestSupport.h"

#include <gtest/gtest.h>

#include <bit>
#include <cfloat>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace lathe::kernels {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

/// Inputs for the SIMD comparison: specials, the edges of the range, random
/// values of every magnitude, random bit patterns (NaN payloads, subnormal
/// inputs), and softmax-like arguments (<= 0). An odd count leaves a tail.
std::vector<float> expInputs() {
  std::vector<float> v = {0.0f, -0.0f, kInf, -kInf, std::numeric_limits<float>::quiet_NaN(),
                          std::bit_cast<float>(0xFFC00001u), std::bit_cast<float>(0x7FA00000u),
                          FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN, FLT_TRUE_MIN, 88.72283f,
                          88.72284f, 89.0f, 89.5f, -103.27893f, -103.97208f, -104.0f, -104.5f,
                          0.34657359f, -0.34657359f, 1.0f, -1.0f};
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> wide(-110.0f, 95.0f), softmax(-30.0f, 0.0f);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 100000; ++i) {
    v.push_back(wide(rng));
    v.push_back(softmax(rng));
    v.push_back(std::bit_cast<float>(bits(rng)));
  }
  v.push_back(0.5f); // odd length: the last vector is a tail
  return v;
}

class ExpF32Test : public simd::testing::PerTarget {};

TEST_P(ExpF32Test, SimdEqualsScalarBitForBit) {
  const std::vector<float> x = expInputs();
  std::vector<float> simd(x.size());
  simd::expF32(x.data(), static_cast<int64_t>(x.size()), simd.data());
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(simd[i]), std::bit_cast<uint32_t>(lathe_exp_f32(x[i])))
        << "exp(" << x[i] << ") (bits " << std::hex << std::bit_cast<uint32_t>(x[i]) << ")";
}

INSTANTIATE_TEST_SUITE_P(Targets, ExpF32Test,
                         ::testing::Values(int64_t{HWY_AVX3}, int64_t{HWY_AVX2},
                                           int64_t{HWY_EMU128}),
                         simd::testing::targetName);

} // namespace
} // namespace lathe::kernels
