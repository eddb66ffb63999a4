// lathe_exp_f32 (runtime/kernels/Transcendentals.h) over an array, through
// the SIMD version the kernels inline (ExpF32-inl.h), dispatched at run
// time. Bit for bit the scalar function's results: the test
// (test/unit/runtime/backends/cpu/kernels/ExpF32Test.cpp) holds it to that
// on every target this machine runs.
#pragma once

#include <cstdint>

namespace lathe::kernels::simd {

/// out[i] = lathe_exp_f32(x[i]) for i < n. out may be x.
void expF32(const float *x, int64_t n, float *out);

} // namespace lathe::kernels::simd
