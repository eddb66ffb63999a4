#include "runtime/backends/cpu/ScreenedArgmax.h"

#include "runtime/backends/cpu/ThreadPool.h"
#include "runtime/backends/cpu/kernels/Matmul.h"
#include "runtime/formats/RowCodec.h"
#include "runtime/sampling/Sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

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
                                                     threading::ThreadPool &pool, Kernel kernel) {
  const formats::FormatSpec spec = screeningFormat();
  if (N <= 0 || K <= 0)
    return nullptr;
  const bool panels = kernel == Kernel::Best && kernels::simd::panelsSupported(spec);
  std::unique_ptr<ScreenedArgmax> s(new ScreenedArgmax(w, N, K));
  const size_t rowBytes = formats::packedRowBytes(spec, K);
  // The int8 copy in the format's packed layout (a block: its float32
  // scale, then 32 codes, the last block padded with zeros), quantized here
  // rather than by formats::quantizeRow (a general encoder, 5x slower:
  // this runs at every load). Any codes would do: the bounds are taken
  // from the copy as made, the values the kernel multiplies. The row
  // kernel multiplies this copy; the panels are repacked from it.
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
  if (!panels) {
    s->rows_ = std::move(packed);
    s->rowBytes_ = rowBytes;
  } else if (!kernels::simd::packPanels(packed.get(), spec, N, K, s->panels_)) {
    return nullptr;
  }
  return s;
}

bool ScreenedArgmax::argmax(const float *x, int64_t T, threading::ThreadPool &pool,
                            std::vector<int32_t> &ids) {
  namespace simd = kernels::simd;
  if (T <= 0)
    return true;
  const formats::FormatSpec spec = screeningFormat();
  if (!simd::quantizeActivations(x, T, k_, spec, quantized_,
                                 rows_ ? simd::CodeOrder::RowKernel : simd::CodeOrder::Columns))
    return false;
  approx_.resize(size_t(T * n_));
  lastCandidates_ = 0;
  lastFullRows_ = 0;

  // Each token's bound is c1 E_v + c2 |w^_v|_1 + c3 M_v: c1 = |x|_1, c2 =
  // A_x = max |x - x~| (from the codes the kernel multiplies, a little over),
  // c3 the float32 rounding of both sums. A token with a non-finite
  // constant is not screened.
  tokens_.assign(size_t(T), Token{});
  const double rounding = 4.0 * double(k_ + 16) * 0x1p-24;
  for (int64_t t = 0; t < T; ++t) {
    const float *xt = x + t * k_;
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
    Token &tk = tokens_[size_t(t)];
    tk.c1 = norm;
    tk.c2 = activationError;
    tk.c3 = rounding * (norm + double(k_) * activationError);
    tk.screened = std::isfinite(norm) && std::isfinite(activationError) && std::isfinite(tk.c3);
  }
  const auto bound = [&](const Token &tk, int64_t v) {
    return double(error_[size_t(v)]) * tk.c1 + double(absSum_[size_t(v)]) * tk.c2 +
           double(largest_[size_t(v)]) * tk.c3;
  };

  // fn(t, token, its estimates) for each token still screened.
  const auto forEachScreened = [&](auto &&fn) {
    for (int64_t t = 0; t < T; ++t)
      if (tokens_[size_t(t)].screened)
        fn(t, tokens_[size_t(t)], approx_.data() + t * n_);
  };
  constexpr int kLanes = 8;
  std::mutex merge;

  // The estimates and, on the same threads while their rows are in cache,
  // each token's floor: the best lower bound, max_v (a_v - bound_v) (a NaN
  // estimate never raises it).
  // Work items: panels of 16 rows, or as many single rows.
  const int64_t rowsPerItem = rows_ ? 1 : simd::PanelWeights::kRows;
  const int64_t items = rows_ ? n_ : panels_.panels;
  pool.parallelFor(0, items, [&](int64_t p0, int64_t p1) {
    const int64_t v0 = p0 * rowsPerItem;
    const int64_t v1 = std::min(n_, p1 * rowsPerItem);
    if (rows_)
      simd::matmulPackedInt8(quantized_, rows_.get(), spec, n_, approx_.data(), v0, v1);
    else
      simd::matmulPanels(quantized_, panels_, approx_.data(), p0, p1);
    forEachScreened([&](int64_t t, const Token &tk, const float *a) {
      // Eight running maxima, so that the compiler keeps them in one vector.
      double most[kLanes];
      std::fill(most, most + kLanes, -std::numeric_limits<double>::infinity());
      int64_t v = v0;
      for (; v + kLanes <= v1; v += kLanes)
        for (int j = 0; j < kLanes; ++j) {
          const double d = double(a[v + j]) - bound(tk, v + j);
          most[j] = d > most[j] ? d : most[j];
        }
      for (; v < v1; ++v) {
        const double d = double(a[v]) - bound(tk, v);
        most[0] = d > most[0] ? d : most[0];
      }
      const double local = *std::max_element(most, most + kLanes);
      std::lock_guard<std::mutex> lock(merge);
      tokens_[size_t(t)].floor = std::max(tokens_[size_t(t)].floor, local);
    });
  });

  // The candidates: every row whose upper bound reaches its token's floor
  // (a NaN estimate stays in, and fails below). A token with more than
  // kMaxCandidates is not screened.
  for (Token &tk : tokens_)
    tk.screened = tk.screened && std::isfinite(tk.floor);
  candidates_.clear();
  pool.parallelFor(0, n_, [&](int64_t v0, int64_t v1) {
    std::vector<Candidate> local;
    forEachScreened([&](int64_t t, const Token &tk, const float *a) {
      // Eight rows tested at a time (one vector), the few that pass
      // picked out after.
      int64_t found = 0;
      for (int64_t g = v0; g < v1 && found <= kMaxCandidates; g += kLanes) {
        const int64_t n = std::min<int64_t>(kLanes, v1 - g);
        bool in[kLanes];
        bool any = false;
        const auto test = [&](int j) {
          in[j] = !(double(a[g + j]) + bound(tk, g + j) < tk.floor);
          any |= in[j];
        };
        if (n == kLanes)
          for (int j = 0; j < kLanes; ++j) // a constant count: one vector
            test(j);
        else
          for (int j = 0; j < n; ++j)
            test(j);
        if (!any)
          continue;
        for (int j = 0; j < n; ++j)
          if (in[j]) {
            local.push_back({int32_t(t), int32_t(g + j), 0.0f});
            ++found;
          }
      }
    });
    std::lock_guard<std::mutex> lock(merge);
    candidates_.insert(candidates_.end(), local.begin(), local.end());
  });
  for (const Candidate &c : candidates_)
    ++tokens_[size_t(c.token)].candidates;
  for (Token &tk : tokens_)
    tk.screened = tk.screened && tk.candidates <= kMaxCandidates;
  std::erase_if(candidates_, [&](const Candidate &c) { return !tokens_[size_t(c.token)].screened; });
  lastCandidates_ = int64_t(candidates_.size());

  // The candidates' float32 logits, each row as the full classifier's
  // kernel computes it; spread over the threads when there are many (a
  // row is about a microsecond, mostly its load from memory).
  const auto logits = [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      Candidate &cd = candidates_[size_t(c)];
      simd::matmulF32(x + int64_t(cd.token) * k_, 1, w_ + int64_t(cd.row) * k_, 1, k_, &cd.logit,
                      0, 1);
    }
  };
  constexpr int64_t kCandidatesAlone = 32;
  if (int64_t(candidates_.size()) <= kCandidatesAlone)
    logits(0, int64_t(candidates_.size()));
  else
    pool.parallelFor(0, int64_t(candidates_.size()), logits);

  // Each token's best: the lowest id on ties; a NaN among its candidates
  // makes it unscreened.
  for (const Candidate &c : candidates_) {
    Token &tk = tokens_[size_t(c.token)];
    if (std::isnan(c.logit))
      tk.screened = false;
    else if (tk.best < 0 || c.logit > tk.bestLogit || (c.logit == tk.bestLogit && c.row < tk.best))
      tk.best = c.row, tk.bestLogit = c.logit;
  }

  // The tokens the screening cannot vouch for get every logit of their
  // rows by the full classifier's kernel (the floats execute() returns;
  // their estimates become them), and their argmax: one pass over the
  // classifier for all of them, not one each nor one for every token.
  const auto vouched = [&](int64_t t) {
    return tokens_[size_t(t)].screened && tokens_[size_t(t)].best >= 0;
  };
  unscreened_.clear();
  for (int64_t t = 0; t < T; ++t)
    if (!vouched(t))
      unscreened_.push_back(t);
  const int64_t U = int64_t(unscreened_.size());
  if (U > 0) {
    full_.resize(size_t(U * (k_ + n_)));
    float *inputs = full_.data(), *rows = full_.data() + U * k_;
    for (int64_t u = 0; u < U; ++u)
      std::copy_n(x + unscreened_[size_t(u)] * k_, k_, inputs + u * k_);
    pool.parallelFor(0, n_, [&](int64_t v0, int64_t v1) {
      simd::matmulF32(inputs, U, w_, n_, k_, rows, v0, v1);
    });
    for (int64_t u = 0; u < U; ++u)
      std::copy_n(rows + u * n_, n_, approx_.data() + unscreened_[size_t(u)] * n_);
    lastFullRows_ = U;
  }
  for (int64_t t = 0; t < T; ++t)
    ids.push_back(vouched(t) ? tokens_[size_t(t)].best
                             : lathe::argmax(std::span<const float>(approx_.data() + t * n_,
                                                             size_t(n_))));
  return true;
}

} // namespace lathe::cpu
