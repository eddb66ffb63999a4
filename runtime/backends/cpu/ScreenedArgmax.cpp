#include "runtime/backends/cpu/ScreenedArgmax.h"

#include "runtime/backends/cpu/ThreadPool.h"
#include "runtime/backends/cpu/kernels/Matmul.h"
#include "runtime/formats/RowCodec.h"
#include "runtime/sampling/Sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

std::unique_ptr<ScreenedArgmax> ScreenedArgmax::make(const float *w, int64_t N, int64_t K,
                                                     threading::ThreadPool &pool) {
  const formats::FormatSpec spec = screeningFormat();
  if (N <= 0 || K <= 0 || !kernels::simd::panelsSupported(spec))
    return nullptr;
  std::unique_ptr<ScreenedArgmax> s(new ScreenedArgmax(w, N, K));
  const size_t rowBytes = formats::packedRowBytes(spec, K);
  // The int8 copy in the format's packed layout (a block: its float32
  // scale, then 32 codes, the last block padded with zeros), quantized here
  // rather than by formats::quantizeRow (a general encoder, 5x slower:
  // this runs at every load). Any codes would do: the bounds are taken
  // from the copy as made, the values the panels multiply.
  constexpr int64_t kBlock = 32;
  if (rowBytes != size_t((K + kBlock - 1) / kBlock) * (4 + kBlock))
    return nullptr;
  std::unique_ptr<uint8_t[]> packed;
  try {
    packed.reset(new uint8_t[size_t(N) * rowBytes]);
    s->error_.resize(size_t(N));
    s->absSum_.resize(size_t(N));
    s->largest_.resize(size_t(N));
  } catch (const std::bad_alloc &) {
    return nullptr;
  }
  pool.parallelFor(0, N, [&](int64_t v0, int64_t v1) {
    for (int64_t v = v0; v < v1; ++v) {
      const float *row = w + v * K;
      uint8_t *out = packed.get() + size_t(v) * rowBytes;
      // A row holding NaN or infinity has no int8 copy (codes 0): its
      // bound is infinite, so it is always a candidate, computed in float32.
      bool finite = true;
      for (int64_t i = 0; i < K; ++i)
        finite &= std::isfinite(row[i]);
      if (!finite) {
        std::memset(out, 0, rowBytes);
        const float infinite = std::numeric_limits<float>::infinity();
        s->error_[size_t(v)] = s->absSum_[size_t(v)] = s->largest_[size_t(v)] = infinite;
        continue;
      }
      // In float, vectorized, then widened to cover the float rounding of
      // the stats themselves: code x scale is within 2^-24 of its largest
      // magnitude's scale, a sum of K magnitudes within K 2^-24 of itself.
      float errorF = 0, absSumF = 0, largestF = 0;
      for (int64_t b0 = 0; b0 < K; b0 += kBlock) {
        const int64_t n = std::min(kBlock, K - b0);
        float most = 0;
        for (int64_t i = 0; i < n; ++i)
          most = std::max(most, std::fabs(row[b0 + i]));
        const float scale = most / 127.0f, inverse = scale > 0 ? 1.0f / scale : 0.0f;
        uint8_t *block = out + (b0 / kBlock) * (4 + kBlock);
        std::memcpy(block, &scale, 4);
        float blockError = 0, blockSum = 0;
        for (int64_t i = 0; i < kBlock; ++i) {
          const float x = i < n ? row[b0 + i] : 0.0f;
          const float q = std::clamp(std::nearbyint(x * inverse), -127.0f, 127.0f);
          block[4 + i] = uint8_t(int8_t(q));
          const float decoded = q * scale;
          blockError = std::max(blockError, std::fabs(x - decoded));
          blockSum += std::fabs(decoded);
        }
        errorF = std::max(errorF, blockError);
        absSumF += blockSum;
        largestF = std::max(largestF, most);
      }
      s->error_[size_t(v)] = up(double(errorF) * (1 + 0x1p-20) + 0x1p-22 * double(largestF));
      s->absSum_[size_t(v)] = up(double(absSumF) * (1 + double(K + 2) * 0x1p-23) * (1 + 0x1p-20));
      s->largest_[size_t(v)] = largestF;
    }
  });
  if (!kernels::simd::packPanels(packed.get(), spec, N, K, s->panels_))
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
  // A token the screening cannot vouch for gets every logit of its row
  // by the full classifier's kernel (the floats execute() returns; its
  // estimates become them), and their argmax: a step of several tokens
  // then pays one pass over the classifier for it, not for all of them.
  const auto everyLogit = [&](int64_t t) {
    float *row = approx_.data() + t * n_;
    pool.parallelFor(0, n_, [&](int64_t v0, int64_t v1) {
      simd::matmulF32(x + t * k_, 1, w_, n_, k_, row, v0, v1);
    });
    ids.push_back(lathe::argmax(std::span<const float>(row, size_t(n_))));
    ++lastFullRows_;
  };
  lastCandidates_ = 0;
  lastFullRows_ = 0;
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
      everyLogit(t);
      continue;
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
      everyLogit(t);
      continue;
    }
    candidates_.clear();
    bool tooMany = false;
    for (int64_t v = 0; v < n_ && !tooMany; ++v)
      if (!(double(a[v]) + bound(v) < floor)) { // NaN stays in, and fails below
        tooMany = int64_t(candidates_.size()) == kMaxCandidates;
        candidates_.push_back(int32_t(v));
      }
    if (tooMany) {
      everyLogit(t);
      continue;
    }
    lastCandidates_ += int64_t(candidates_.size());
    // The candidates' float32 logits, row by row as the full classifier's
    // kernel computes them; the lowest id on ties (candidates ascend).
    int32_t best = -1;
    float bestLogit = 0;
    bool nan = false;
    for (int32_t v : candidates_) {
      float logit;
      simd::matmulF32(xt, 1, w_ + int64_t(v) * k_, 1, k_, &logit, 0, 1);
      nan |= std::isnan(logit);
      if (best < 0 || logit > bestLogit)
        best = v, bestLogit = logit;
    }
    if (nan || best < 0) {
      everyLogit(t);
      continue;
    }
    ids.push_back(best);
  }
  return true;
}

} // namespace lathe::cpu
