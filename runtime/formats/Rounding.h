// Round-half-to-even, the rounding every format in this folder uses.
// std::nearbyint would depend on the current floating-point rounding mode,
// which is global state a caller may have changed; this does not.
#pragma once

#include <cmath>

namespace lathe::formats {

/// Rounds to the nearest integer, ties to the even one: 2.5 -> 2, 3.5 -> 4,
/// -2.5 -> -2. Exact for every finite double.
inline double roundHalfEven(double x) {
  // Work on the magnitude, where the fraction a - floor(a) is exact and the
  // tie rule is symmetric.
  const double a = std::fabs(x);
  const double r = std::floor(a);
  const double frac = a - r;
  double rounded = r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0))
    rounded = r + 1.0;
  return std::copysign(rounded, x);
}

} // namespace lathe::formats
