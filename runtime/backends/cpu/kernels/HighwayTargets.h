// The Highway targets the runtime's kernels are compiled for. Include it
// first in every kernel file, before any Highway header (a kernel that needs
// AVX3_DL, which Highway 1.0.3 leaves out unless asked, defines
// HWY_WANT_AVX3_DL before including this).
//
// SSSE3/SSE4 machines run the portable 128-bit baseline instead: it halves
// compile time, and every x86 server of the last decade has AVX2. Scalable
// vectors (SVE, RVV) are off because the block decoders assume a lane count
// known at compile time.
#pragma once

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS                                                   \
  (HWY_SSSE3 | HWY_SSE4 | HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif
