// Lathe's exp and inverse square root (runtime/kernels/Transcendentals.h):
// the exp's accuracy against double exp and its special values. Its SIMD
// form: test/unit/runtime/backends/cpu/kernels/ExpF32Test.cpp.
#include "runtime/kernels/Transcendentals.h"

#include <gtest/gtest.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace lathe::kernels {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

/// Error of y against exp(x) in units of the last place of the exact value.
double ulpError(float x, float y) {
  const double exact = std::exp(static_cast<double>(x));
  int exponent = 0;
  std::frexp(exact, &exponent);
  return std::fabs(static_cast<double>(y) - exact) / std::ldexp(1.0, exponent - 24);
}

// A sweep over every 17th float (~131 million) between -104 and 89, the range
// where exp is neither 0 nor inf: within 1 ulp of the exact value wherever
// the result is normal (a full sweep of all 2.2e9 floats found 0.990 ulp at
// most), within one subnormal step (2^-149) of it below FLT_MIN.
TEST(Transcendentals, ExpWithinOneUlpOfDouble) {
  double worst = 0;
  float worstAt = 0;
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += 17) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(bits));
    if (!(x >= -104.0f && x <= 89.0f))
      continue;
    const float y = lathe_exp_f32(x);
    const double exact = std::exp(static_cast<double>(x));
    if (exact > FLT_MAX) {
      ASSERT_EQ(y, kInf) << x;
    } else if (exact < FLT_MIN) {
      ASSERT_LE(std::fabs(y - exact), std::ldexp(1.0, -149)) << x;
    } else if (const double e = ulpError(x, y); e > worst) {
      worst = e;
      worstAt = x;
    }
  }
  EXPECT_LE(worst, 1.0) << "at " << worstAt;
}

TEST(Transcendentals, ExpSpecialValues) {
  EXPECT_EQ(lathe_exp_f32(0.0f), 1.0f);
  EXPECT_EQ(lathe_exp_f32(-0.0f), 1.0f);
  EXPECT_EQ(lathe_exp_f32(kInf), kInf);
  EXPECT_EQ(std::bit_cast<uint32_t>(lathe_exp_f32(-kInf)), 0u);
  EXPECT_EQ(lathe_exp_f32(FLT_MAX), kInf);
  EXPECT_EQ(lathe_exp_f32(89.0f), kInf);
  EXPECT_EQ(std::bit_cast<uint32_t>(lathe_exp_f32(-FLT_MAX)), 0u);
  EXPECT_EQ(std::bit_cast<uint32_t>(lathe_exp_f32(-104.0f)), 0u);
  // The largest finite result and the smallest subnormal one.
  EXPECT_LT(lathe_exp_f32(88.72283f), kInf);
  EXPECT_EQ(lathe_exp_f32(-103.27893f), std::ldexp(1.0f, -149));
  // NaN stays the same NaN (softmax must let a NaN score through).
  for (uint32_t nan : {0x7FC00000u, 0xFFC00000u, 0x7FC12345u})
    EXPECT_EQ(std::bit_cast<uint32_t>(lathe_exp_f32(std::bit_cast<float>(nan))), nan);
}

TEST(Transcendentals, InverseSqrtIsOneOverSqrt) {
  for (double x : {1.0, 2.0, 64.0, 288.0, 1e-5, 3.5e7})
    EXPECT_EQ(lathe_inverse_sqrt(x), 1.0 / std::sqrt(x));
}

} // namespace
} // namespace lathe::kernels
