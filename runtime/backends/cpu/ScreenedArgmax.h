// Greedy decoding's argmax over a float32 classifier without computing every
// logit. A batch-1 decode step of stories15M FP32 reads 61 MB of weights, 37
// of them the classifier's (32000 x 288 floats), and the step is bound by
// memory. An int8 copy of the classifier (INT8 blocks of 32: a quarter of
// the bytes, multiplied by the panel kernel of PanelMatmul.h where the
// machine has AVX-512 VNNI, else by the row kernel of Int8Matmul.h, whose
// AVX2 form is the same scheme 32 codes a step) gives each logit within a
// bound; only the
// rows whose upper bound reaches the best lower bound are computed in
// float32, by the kernel the full classifier runs (matmulF32 gives a row the
// same float alone as among all its rows: tested). So the id is exactly
// lathe::argmax of the logits execute() would return: every other row's
// float32 logit lies below the best candidate's.
//
// The bound, for row v and input x (x~: x as the panel kernel rounds it
// per block, w^: the int8 copy of w):
//   |x.w - x~.w^| <= |x.(w - w^)| + |(x - x~).w^|
//                 <= E_v |x|_1 + A_x |w^_v|_1
// with E_v = max |w_v - w^_v| and A_x = max |x - x~| (from the codes the
// kernel multiplies, a little over), plus the float32 rounding of both
// sums: 4 (K + 16) 2^-24 M_v (|x|_1 + K A_x), M_v = max |w_v| (each
// sum's error is at most about K 2^-24 sum |x w|). A token of non-finite
// inputs, too many candidates or a NaN among them gets its row's every
// logit computed, by the same kernel.
#pragma once

#include "runtime/backends/cpu/kernels/PanelMatmul.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

namespace lathe::threading {
class ThreadPool;
}

namespace lathe::cpu {

class ScreenedArgmax {
public:
  /// Which kernel multiplies the int8 copy: the panels where this machine
  /// has them, else the rows (Best), or the rows whatever the machine
  /// (Rows: for tests of that path on a machine with panels).
  enum class Kernel { Best, Rows };

  /// For N rows of K float32 weights at `w` (which must outlive this), the
  /// rows quantized on `pool`'s threads; nullptr where memory runs out.
  static std::unique_ptr<ScreenedArgmax> make(const float *w, int64_t N, int64_t K,
                                              threading::ThreadPool &pool,
                                              Kernel kernel = Kernel::Best);

  /// The argmax of x_t . w_v over v for each of the T rows of x (sampling's
  /// argmax of the float32 logits: the lowest id on ties, NaN never
  /// winning), appended to `ids`. A row the screening cannot vouch for (a
  /// non-finite input or bound, more than kMaxCandidates rows close to the
  /// best, a NaN candidate) has every logit computed, those rows together
  /// in one pass: up to 16 rows (CpuExecutable::kScreenedRows) each float
  /// is the one its row gets alone. False (ids as they were) only where x
  /// cannot be rounded for the int8 kernel.
  bool argmax(const float *x, int64_t T, threading::ThreadPool &pool, std::vector<int32_t> &ids);

  /// The last argmax's estimates of every logit (T rows of N: the int8
  /// copy's, each within its bound of the float32 logit; a row computed
  /// whole, its logits).
  std::span<const float> estimates() const { return approx_; }
  /// Bytes a step reads for the screening: the int8 copy and the bounds.
  int64_t bytesPerStep() const {
    const int64_t copy = rows_ ? n_ * int64_t(rowBytes_) : panels_.panels * panels_.panelBytes;
    return copy + 3 * n_ * int64_t(sizeof(float));
  }
  /// Whether the int8 copy is multiplied by the panel kernel.
  bool usesPanels() const { return rows_ == nullptr; }
  /// Rows computed in float32 by the last argmax (all tokens): a measure
  /// of how tight the bound is.
  int64_t lastCandidates() const { return lastCandidates_; }
  /// Rows of the last argmax whose every logit was computed.
  int64_t lastFullRows() const { return lastFullRows_; }

  static constexpr int64_t kMaxCandidates = 1024;

private:
  ScreenedArgmax(const float *w, int64_t N, int64_t K) : w_(w), n_(N), k_(K) {}

  const float *w_;
  int64_t n_, k_;
  // The int8 copy: panels, or (rows_ set) rows in the format's packed
  // layout, rowBytes_ each.
  kernels::simd::PanelWeights panels_;
  std::unique_ptr<uint8_t[]> rows_;
  size_t rowBytes_ = 0;
  // Per row: E_v, |w^_v|_1 and M_v, rounded up.
  std::vector<float> error_, absSum_, largest_;
  kernels::simd::Int8Activations quantized_;
  std::vector<float> approx_;
  // A token's bound constants, best lower bound, candidates and best
  // candidate (the last argmax's).
  struct Token {
    double c1 = 0, c2 = 0, c3 = 0;
    double floor = -std::numeric_limits<double>::infinity();
    int64_t candidates = 0;
    int32_t best = -1;
    float bestLogit = 0;
    bool screened = false;
  };
  std::vector<Token> tokens_;
  struct Candidate {
    int32_t token, row;
    float logit;
  };
  std::vector<Candidate> candidates_;
  // The unscreened tokens of the last argmax, their inputs and every logit.
  std::vector<int64_t> unscreened_;
  std::vector<float> full_;
  int64_t lastCandidates_ = 0, lastFullRows_ = 0;
};

} // namespace lathe::cpu
