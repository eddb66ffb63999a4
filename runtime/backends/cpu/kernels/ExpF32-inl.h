// Per-target (Highway foreach_target) lathe_exp_f32 of
// runtime/kernels/Transcendentals.h, lane by lane: the same operations on
// the same constants in the same order, none fused (Mul and Add, never
// MulAdd, which is a fused multiply-add on some targets and two roundings
// on others), so each lane gives the scalar function's bits. Included by
// the kernel .cpp files once per target; not a public header.

#if defined(LATHE_KERNELS_SIMD_EXP_F32_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LATHE_KERNELS_SIMD_EXP_F32_INL_H_
#undef LATHE_KERNELS_SIMD_EXP_F32_INL_H_
#else
#define LATHE_KERNELS_SIMD_EXP_F32_INL_H_
#endif

#include "hwy/highway.h"
#include "runtime/kernels/Transcendentals.h"

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// 2^e for -126 <= e <= 127 in every lane, from its bits (lathe_exp_pow2).
template <class D> HWY_INLINE hn::Vec<D> expPow2(D d, hn::Vec<hn::RebindToSigned<D>> e) {
  const hn::RebindToSigned<D> di;
  return hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(e, hn::Set(di, 127))));
}

/// lathe_exp_f32 of every lane. NaN lanes stay the same NaN.
template <class D> HWY_INLINE hn::Vec<D> expF32(D d, hn::Vec<D> x) {
  const hn::RebindToSigned<D> di;
  const auto minInput = hn::Set(d, LATHE_EXP_MIN_INPUT);
  const auto maxInput = hn::Set(d, LATHE_EXP_MAX_INPUT);
  // The scalar clamps with comparisons; so does this (Min and Max treat NaN
  // differently per target, and NaN lanes are replaced at the end anyway).
  auto c = hn::IfThenElse(hn::Lt(x, minInput), minInput, x);
  c = hn::IfThenElse(hn::Gt(c, maxInput), maxInput, c);
  const auto rounder = hn::Set(d, LATHE_EXP_ROUNDER);
  const auto t = hn::Mul(c, hn::Set(d, LATHE_EXP_LOG2E));
  const auto k = hn::Sub(hn::Add(t, rounder), rounder);
  const auto r1 = hn::Sub(c, hn::Mul(k, hn::Set(d, LATHE_EXP_LN2_HI)));
  const auto r = hn::Sub(r1, hn::Mul(k, hn::Set(d, LATHE_EXP_LN2_LO)));
  // lathe_exp_horner's steps: p * r + c, two roundings.
  auto horner = [](auto p, auto r, auto c) { return hn::Add(hn::Mul(p, r), c); };
  auto p = horner(hn::Set(d, LATHE_EXP_P0), r, hn::Set(d, LATHE_EXP_P1));
  p = horner(p, r, hn::Set(d, LATHE_EXP_P2));
  p = horner(p, r, hn::Set(d, LATHE_EXP_P3));
  p = horner(p, r, hn::Set(d, LATHE_EXP_P4));
  p = horner(p, r, hn::Set(d, LATHE_EXP_P5));
  p = hn::Add(horner(p, hn::Mul(r, r), r), hn::Set(d, 1.0f));
  // NaN lanes convert 0 instead (converting NaN is undefined on the
  // emulated targets); they are replaced below.
  const auto ki = hn::ConvertTo(di, hn::IfThenZeroElse(hn::IsNaN(x), k));
  const auto k1 = hn::Sub(hn::ShiftRight<1>(hn::Add(ki, hn::Set(di, 256))), hn::Set(di, 128));
  const auto scaled = hn::Mul(hn::Mul(p, expPow2(d, k1)), expPow2(d, hn::Sub(ki, k1)));
  return hn::IfThenElse(hn::IsNaN(x), x, scaled);
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#endif // LATHE_KERNELS_SIMD_EXP_F32_INL_H_ include guard
