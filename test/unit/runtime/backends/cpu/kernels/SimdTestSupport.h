// What the SIMD kernel tests share: fresh random inputs, and a fixture that
// runs a test once per Highway target this machine supports (the target and
// every lesser one stay enabled, so dispatch picks the named one).
#pragma once

#include "hwy/targets.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace lathe::kernels::simd::testing {

inline std::vector<float> randomVector(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float &x : v) x = dist(rng);
  return v;
}

/// Parameterized by a Highway target bit; skipped where the CPU lacks it.
class PerTarget : public ::testing::TestWithParam<int64_t> {
protected:
  void SetUp() override {
    hwy::SetSupportedTargetsForTest(0);
    const int64_t supported = hwy::SupportedTargets();
    if ((supported & GetParam()) == 0)
      GTEST_SKIP() << hwy::TargetName(GetParam()) << " is not supported here";
    hwy::SetSupportedTargetsForTest(supported & ~(GetParam() - 1));
  }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

inline std::string targetName(const ::testing::TestParamInfo<int64_t> &info) {
  return hwy::TargetName(info.param);
}

} // namespace lathe::kernels::simd::testing
