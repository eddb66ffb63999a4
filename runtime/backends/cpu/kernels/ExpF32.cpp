// ExpF32.h's array form of the SIMD exp, compiled once per Highway target.

#include "runtime/backends/cpu/kernels/HighwayTargets.h"

#include "runtime/backends/cpu/kernels/ExpF32.h"

#include <algorithm>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/backends/cpu/kernels/ExpF32.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep

#include "hwy/highway.h"
#include "runtime/backends/cpu/kernels/ExpF32-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void ExpF32Impl(const float *x, int64_t n, float *out) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(expF32(d, hn::LoadU(d, x + i)), d, out + i);
  if (i < n) {
    // The tail through a zero-padded vector.
    HWY_ALIGN float tail[hn::MaxLanes(d)] = {};
    std::copy(x + i, x + n, tail);
    hn::Store(expF32(d, hn::Load(d, tail)), d, tail);
    std::copy(tail, tail + (n - i), out + i);
  }
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lathe::kernels::simd {

HWY_EXPORT(ExpF32Impl);

void expF32(const float *x, int64_t n, float *out) {
  if (n > 0)
    HWY_DYNAMIC_DISPATCH(ExpF32Impl)(x, n, out);
}

} // namespace lathe::kernels::simd
#endif // HWY_ONCE
