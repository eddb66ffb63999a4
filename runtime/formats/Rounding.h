// Round-half-to-even, the rounding every format in this folder uses.
// std::nearbyint would depend on the current floating-point rounding mode,
// which is global state a caller may have changed; this does not.
#pragma once

#include <cmath>
#include <cstdint>

namespace lathe::formats {

/// Rounds to the nearest integer, ties to the even one: 2.5 -> 2, 3.5 -> 4,
/// -2.5 -> -2. Exact for every finite double.
inline double roundHalfEven(double x) {
  // Work on the magnitude, where the fraction a - floor(a) is exact and the
  // tie rule is symmetric. Every double from 2^52 on (and NaN, infinity) is
  // already an integer; below it the floor is the int64 truncation, whose
  // low bit is its parity. (std::floor and fmod are library calls on the
  // x86-64 baseline; the KV cache's store step rounds every value it writes.)
  const double a = std::fabs(x);
  if (!(a < 4503599627370496.0)) // 2^52
    return x;
  const int64_t whole = static_cast<int64_t>(a);
  const double frac = a - static_cast<double>(whole);
  // Bitwise, not short-circuit: no branch to mispredict on random fractions.
  const int64_t up = int64_t{frac > 0.5} | (int64_t{frac == 0.5} & (whole & 1));
  return std::copysign(static_cast<double>(whole + up), x);
}

} // namespace lathe::formats
