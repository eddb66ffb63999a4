#include "runtime/formats/Rounding.h"

#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>

namespace lathe::formats {
namespace {

TEST(Rounding, TiesGoToEven) {
  EXPECT_EQ(roundHalfEven(0.5), 0.0);
  EXPECT_EQ(roundHalfEven(1.5), 2.0);
  EXPECT_EQ(roundHalfEven(2.5), 2.0);
  EXPECT_EQ(roundHalfEven(3.5), 4.0);
  EXPECT_EQ(roundHalfEven(-0.5), 0.0);
  EXPECT_EQ(roundHalfEven(-1.5), -2.0);
  EXPECT_EQ(roundHalfEven(-2.5), -2.0);
}

TEST(Rounding, NonTiesGoToNearest) {
  EXPECT_EQ(roundHalfEven(2.4999999999), 2.0);
  EXPECT_EQ(roundHalfEven(2.5000000001), 3.0);
  EXPECT_EQ(roundHalfEven(-0.6), -1.0);
  EXPECT_EQ(roundHalfEven(0.49999999999999994), 0.0);
  // One ulp either side of -0.5.
  EXPECT_EQ(roundHalfEven(-0.5 - 0x1p-53), -1.0);
  EXPECT_EQ(roundHalfEven(-0.5 + 0x1p-54), 0.0);
  EXPECT_EQ(roundHalfEven(0.5 + 0x1p-53), 1.0);
  EXPECT_EQ(roundHalfEven(0x1p60), 0x1p60);
}

TEST(Rounding, IgnoresTheFloatingPointRoundingMode) {
  const int saved = std::fegetround();
  std::fesetround(FE_UPWARD);
  const double up = roundHalfEven(2.5);
  std::fesetround(saved);
  EXPECT_EQ(up, 2.0);
}

} // namespace
} // namespace lathe::formats
