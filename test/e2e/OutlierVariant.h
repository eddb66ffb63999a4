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
//
// Outlier-key variants do the same to the keys, the case the KV cache's
// block formats must survive ("Accurate Block Quantization in LLMs with
// Outliers"): in each layer a few key channels (rows of wk) are multiplied
// by s and the rows of wq that meet them in q.k divided by s, so every
// attention score is unchanged while the cached keys carry s-times-larger
// channels. RoPE rotates channel pairs, so a pair's two channels get the
// same s: rotating (s a, s b) gives exactly s times the rotation of (a, b).
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <string>
#include <utility>
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

/// One RoPE pair of key channels in one layer: rows `first` and `second` of
/// wk multiplied by 2^exponent, the rows of wq that meet them
/// (queryRowsOf) divided by 2^exponent. A negative exponent makes the
/// queries, not the keys, the outliers.
struct OutlierKeyPair {
  int64_t layer = 0;
  int64_t first = 0, second = 0;
  int exponent = 0;
};

struct OutlierKeySpec {
  uint64_t seed = 1;
  /// RoPE pairs of key channels per layer, drawn anew in each layer.
  int64_t pairs = 4;
  /// Pair i of a layer (in the order drawn) gets exponents[i % size].
  std::vector<int> exponents = {5};
  /// false: only wk changes, which does not cancel. The check that a
  /// bit-identity test can fail.
  bool scaleQueries = true;
};

/// The two key channels (rows of wk, in [0, kvHeads * headDim)) that RoPE
/// rotates together as pair `pair` of [0, kvHeads * headDim / 2): (2i,
/// 2i + 1) of a head for interleaved RoPE (llama2.c, GGUF), (i, i +
/// headDim / 2) for rotate-half (Hugging Face).
std::pair<int64_t, int64_t> ropePairChannels(const frontend::LlamaConfig &config, int64_t pair);

/// The rows of wq whose dot products read key channel `keyRow`: the same
/// dimension of every query head of its KV head (heads / kvHeads of them;
/// one with n_kv_heads == n_heads).
std::vector<int64_t> queryRowsOf(const frontend::LlamaConfig &config, int64_t keyRow);

/// `spec.pairs` distinct RoPE pairs of key channels in each layer, drawn
/// with splitmix64 from `spec.seed`, layer by layer. Fails on a count
/// outside [1, kvHeads * headDim / 2], no exponents, or an exponent of 0.
Expected<std::vector<OutlierKeyPair>> chooseOutlierKeyPairs(const frontend::LlamaConfig &config,
                                                            const OutlierKeySpec &spec);

/// Writes the outlier-key variant of the llama2.c checkpoint `source` (no
/// q/k biases or q/k norms: the format has none) to `destination` and
/// returns the pairs it rescaled; fails as writeOutlierVariant does.
Expected<std::vector<OutlierKeyPair>> writeOutlierKeyVariant(const std::string &source,
                                                             const std::string &destination,
                                                             const OutlierKeySpec &spec);

} // namespace lathe::test
