// Outlier-channel variants of a llama2.c checkpoint (issue 20): real LLMs
// have a few residual-stream channels far larger than the rest, stories15M
// has none, and 4-bit formats that look fine on it can collapse on a model
// that has them. A variant gives stories15M such channels without changing
// what it computes: for channel c and s = 2^e, in every layer the attention
// RMSNorm gain[c] is divided by s and column c of wq, wk and wv (the weights
// that read that norm's output) multiplied by s; likewise the FFN RMSNorm
// gain[c] and column c of w1 and w3. The final norm stays as it is: it feeds
// the classifier, which llama2.c ties to the embedding table, and scaling
// that table would change the residual stream itself.
//
// Why the FP32 output is bit-identical: scaling by a power of two commutes
// with float rounding (barring overflow and subnormals), so the norm's
// output in channel c comes out exactly 1/s of the original, and every
// product w[r][c] * s * y[c] / s equals w[r][c] * y[c] to the bit; the sums
// see the same terms in the same order.
#pragma once

#include "runtime/support/Expected.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lathe::test {

/// One rescaled channel: its gains divided by 2^exponent, the weight
/// columns that read it multiplied by 2^exponent. A positive exponent makes
/// the weight columns the outliers, a negative one the gains.
struct OutlierChannel {
  int64_t channel = 0;
  int exponent = 0;
};

struct OutlierVariantSpec {
  uint64_t seed = 1;
  int64_t channels = 4;
  /// Channel i (in the order drawn) gets exponents[i % size]: {5} scales
  /// every channel by 2^5, {5, -8} alternates up and down.
  std::vector<int> exponents = {5};
  /// false: only the gains change, which does not cancel. The check that a
  /// bit-identity test can fail.
  bool scaleColumns = true;
};

/// `spec.channels` distinct channels of [0, dim), drawn with splitmix64 from
/// `spec.seed` (the same channels on every platform), each with its
/// exponent. Fails on a count outside [1, dim], no exponents, or an exponent
/// of 0 (it would change nothing).
Expected<std::vector<OutlierChannel>> chooseOutlierChannels(int64_t dim,
                                                            const OutlierVariantSpec &spec);

/// Writes the variant of the llama2.c checkpoint `source` to `destination`
/// and returns the channels it rescaled. Fails before writing anything on a
/// file the llama2.c reader rejects, a bad spec, or a value that could not
/// be scaled back exactly (it would overflow, or lose bits as a subnormal,
/// so the change would not cancel); fails naming `destination` when that
/// cannot be written. `destination` may be `source`.
Expected<std::vector<OutlierChannel>> writeOutlierVariant(const std::string &source,
                                                          const std::string &destination,
                                                          const OutlierVariantSpec &spec);

} // namespace lathe::test
