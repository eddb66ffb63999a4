#include "runtime/backends/cpu/ScreenedArgmax.h"

#include "runtime/backends/cpu/ThreadPool.h"
#include "runtime/backends/cpu/kernels/Matmul.h"
#include "runtime/formats/RowCodec.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lathe::cpu {
namespace {

/// x rounded up to the next float (bounds must not shrink when stored).
float up(double x) {
  const float f = float(x);
  return double(f) >= x ? f : std::nextafter(f, std::numeric_limits<float>::infinity());
}

formats::FormatSpec screeningFormat() {
  formats::FormatSpec spec;
  spec.kind = formats::FormatKind::INT8;
  spec.blockSize = 32;
  spec.symmetric = true;
  return spec;
}

} // namespace

std::unique_ptr<ScreenedArgmax> ScreenedArgmax::make(const float *w, int64_t N, int64_t K) {
  const formats::FormatSpec spec = screeningFormat();
  if (N <= 0 || K <= 0 || !kernels::simd::panelsSupported(spec))
    return nullptr;
  std::unique_ptr<ScreenedArgmax> s(new ScreenedArgmax(w, N, K));
  const size_t rowBytes = formats::packedRowBytes(spec, K);
  std::vector<uint8_t> packed;
  try {
    packed.resize(size_t(N) * rowBytes);
    s->error_.resize(size_t(N));
    s->absSum_.resize(size_t(N));
    s->largest_.resize(size_t(N));
  } catch (const std::bad_alloc &) {
    return nullptr;
  }
  std::vector<float> decoded(static_cast<size_t>(K));
  for (int64_t v = 0; v < N; ++v) {
    const std::span<const float> row(w + v * K, size_t(K));
    const std::span<uint8_t> out(packed.data() + size_t(v) * rowBytes, rowBytes);
    // A row holding NaN or infinity has no int8 copy: its bound is
    // infinite, so every argmax falls back to the float32 logits.
    double error = 0, absSum = 0, largest = 0;
    if (formats::quantizeRow(spec, row, out)) {
      formats::dequantizeRow(spec, out, decoded);
      for (int64_t i = 0; i < K; ++i) {
        error = std::max(error, std::fabs(double(row[i]) - double(decoded[i])));
        absSum += std::fabs(double(decoded[i]));
        largest = std::max(largest, std::fabs(double(row[i])));
      }
    } else {
      std::fill(out.begin(), out.end(), uint8_t(0));
      error = absSum = largest = std::numeric_limits<double>::infinity();
    }
    s->error_[size_t(v)] = up(error);
    s->absSum_[size_t(v)] = up(absSum * (1 + 0x1p-20));
    s->largest_[size_t(v)] = up(largest);
  }
  if (!kernels::simd::packPanels(packed.data(), spec, N, K, s->panels_))
    return nullptr;
  return s;
}

bool ScreenedArgmax::argmax(const float *x, int64_t T, threading::ThreadPool &pool,
                            std::vector<int32_t> &ids) {
  namespace simd = kernels::simd;
  if (T <= 0)
    return true;
  if (!simd::quantizeActivations(x, T, k_, panels_.spec, quantized_, simd::CodeOrder::Columns))
    return false;
  approx_.resize(size_t(T * n_));
  pool.parallelFor(0, panels_.panels, [&](int64_t p0, int64_t p1) {
    simd::matmulPanels(quantized_, panels_, approx_.data(), p0, p1);
  });
  const size_t before = ids.size();
  lastCandidates_ = 0;
  const double rounding = 4.0 * double(k_ + 16) * 0x1p-24;
  for (int64_t t = 0; t < T; ++t) {
    const float *xt = x + t * k_;
    // |x|_1 and A_x = max |x - x~|, from the codes the panels multiplied.
    double norm = 0, activationError = 0;
    const int64_t bs = quantized_.blockSize;
    for (int64_t i = 0; i < k_; ++i) {
      const double rounded = double(quantized_.codes[size_t(t * quantized_.codesPerRow + i)]) *
                             double(quantized_.scales[size_t(t * quantized_.blocksPerRow + i / bs)]);
      norm += std::fabs(double(xt[i]));
      activationError = std::max(activationError, std::fabs(double(xt[i]) - rounded));
    }
    norm *= 1 + 0x1p-20;
    activationError *= 1 + 0x1p-20;
    if (!std::isfinite(norm) || !std::isfinite(activationError)) {
      ids.resize(before);
      return false;
    }
    const float *a = approx_.data() + t * n_;
    const auto bound = [&](int64_t v) {
      return double(error_[v]) * norm + activationError * double(absSum_[v]) +
             rounding * double(largest_[v]) * (norm + double(k_) * activationError);
    };
    double floor = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < n_; ++v)
      floor = std::max(floor, double(a[v]) - bound(v));
    if (!std::isfinite(floor)) {
      ids.resize(before);
      return false;
    }
    candidates_.clear();
    for (int64_t v = 0; v < n_; ++v)
      if (!(double(a[v]) + bound(v) < floor)) { // NaN stays in, and fails below
        if (int64_t(candidates_.size()) == kMaxCandidates) {
          ids.resize(before);
          return false;
        }
        candidates_.push_back(int32_t(v));
      }
    lastCandidates_ += int64_t(candidates_.size());
    // The candidates' float32 logits, row by row as the full classifier's
    // kernel computes them; the lowest id on ties (candidates ascend).
    int32_t best = -1;
    float bestLogit = 0;
    for (int32_t v : candidates_) {
      float logit;
      simd::matmulF32(xt, 1, w_ + int64_t(v) * k_, 1, k_, &logit, 0, 1);
      if (std::isnan(logit)) {
        ids.resize(before);
        return false;
      }
      if (best < 0 || logit > bestLogit)
        best = v, bestLogit = logit;
    }
    if (best < 0) {
      ids.resize(before);
      return false;
    }
    ids.push_back(best);
  }
  return true;
}

} // namespace lathe::cpu
