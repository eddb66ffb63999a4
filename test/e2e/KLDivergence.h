// The mean next-token KL divergence of a build from the FP32 build over
// text the FP32 build sampled itself: the quantization quality measure of
// the end-to-end tests (QuantizedModelTest, GgufModelTest).
#pragma once

#include "runtime/artifact/Artifact.h"
#include "runtime/engine/Generation.h"
#include "runtime/backend/Executable.h"
#include "runtime/engine/Session.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

namespace lathe::test {

/// ~15k tokens `fp32` (a stories15M build) samples from 64 prompts of its
/// own, 230 tokens each at temperature 1, seed 1; empty on failure.
inline std::vector<std::vector<int32_t>> sampleText(std::shared_ptr<const artifact::Artifact> fp32) {
  std::vector<std::vector<int32_t>> sequences;
  auto tok = Tokenizer::create(fp32->vocabulary());
  auto executable = backend::load(fp32);
  EXPECT_TRUE(tok && executable);
  if (!tok || !executable)
    return sequences;
  const char *openers[] = {"Once upon a time", "One day", "Yesterday", "In a small town",
                           "Every morning", "Long ago", "On a sunny day", "After school"};
  const char *subjects[] = {"a little girl", "a big dog", "Tom", "a tiny bird",
                            "Lily", "an old man", "a red ball", "two friends"};
  for (const char *o : openers)
    for (const char *s : subjects)
      sequences.push_back(tok->encode(std::string(o) + " " + s, /*addBos=*/true));
  GenerationOptions options;
  options.maxNewTokens = 230;
  options.stopAtEndOfText = false;
  options.sampler.temperature = 1.0f;
  options.sampler.seed = 1;
  auto prompts = sequences;
  auto stats = generateMany(**executable, prompts, options,
                            [&](size_t i, int32_t token) { sequences[i].push_back(token); });
  EXPECT_TRUE(stats);
  if (!stats)
    sequences.clear();
  return sequences;
}

/// Mean over every predicted token of `sequences` of KL(P_fp32 || P_quant);
/// *tokens receives how many tokens it averaged.
/// Every position's logits of `ids` run through `session` (reset first):
/// one prefill, or for a windowed cache (KIVI int4, int2; int8, bfp8, bfp4
/// with window=R), whose prefill attention reads every row in f32 and which
/// quantizes only what decoding leaves behind its window, one token a step,
/// as generation sees the cache.
inline Expected<std::span<const float>> scoredLogits(Session &session,
                                                     const std::vector<int32_t> &ids,
                                                     std::vector<float> &decoded) {
  session.reset();
  if (!session.kvCache().layout().format.windowed())
    return session.forward(ids, /*allLogits=*/true);
  decoded.clear();
  for (size_t i = 0; i < ids.size(); ++i) {
    auto logits = session.forward(std::span<const int32_t>(&ids[i], 1));
    if (!logits)
      return logits.error();
    decoded.insert(decoded.end(), logits->begin(), logits->end());
  }
  return std::span<const float>(decoded);
}

inline double meanKL(const std::vector<std::vector<int32_t>> &sequences,
                     std::shared_ptr<const artifact::Artifact> fp32,
                     std::shared_ptr<const artifact::Artifact> quant, int64_t *tokens) {
  *tokens = 0;
  auto p = Session::create(fp32), q = Session::create(quant);
  EXPECT_TRUE(p && q);
  if (!p || !q)
    return INFINITY;
  const size_t vocab = static_cast<size_t>(fp32->config().vocab);
  double sum = 0;
  std::vector<float> reference;
  for (const std::vector<int32_t> &ids : sequences) {
    p->reset();
    q->reset();
    auto lp = p->forward(ids, /*allLogits=*/true);
    EXPECT_TRUE(lp);
    if (!lp)
      return INFINITY;
    reference.assign(lp->begin(), lp->end()); // q's forward reuses the buffer
    std::vector<float> decoded;
    auto lq = scoredLogits(*q, ids, decoded);
    EXPECT_TRUE(lq);
    if (!lq)
      return INFINITY;
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      sum += klDivergence({reference.data() + t * vocab, vocab}, lq->subspan(t * vocab, vocab));
      ++*tokens;
    }
  }
  return sum / double(*tokens);
}

/// How far builds drift from the FP32 build over every predicted token of
/// `sequences`: mean KL(P_fp32 || P_build), the share of tokens whose most
/// likely next token is the FP32 build's (top-1 agreement), and the build's
/// perplexity of the text.
struct Drift {
  double meanKL = INFINITY;
  double top1 = 0;
  double perplexity = INFINITY;
  int64_t tokens = 0;
};

/// The Drift of each of `builds`, with one FP32 pass shared by all of them.
inline std::vector<Drift>
drift(const std::vector<std::vector<int32_t>> &sequences,
      std::shared_ptr<const artifact::Artifact> fp32,
      const std::vector<std::shared_ptr<const artifact::Artifact>> &builds) {
  std::vector<Drift> result(builds.size());
  auto p = Session::create(fp32);
  EXPECT_TRUE(p);
  if (!p)
    return result;
  std::vector<Session> sessions;
  for (const auto &b : builds) {
    auto q = Session::create(b);
    EXPECT_TRUE(q);
    if (!q)
      return result;
    sessions.push_back(q.take());
  }
  const size_t vocab = static_cast<size_t>(fp32->config().vocab);
  auto argmax = [](std::span<const float> row) {
    return std::max_element(row.begin(), row.end()) - row.begin();
  };
  std::vector<double> kl(builds.size(), 0), nll(builds.size(), 0);
  std::vector<int64_t> agree(builds.size(), 0);
  int64_t tokens = 0;
  std::vector<float> reference, decoded;
  for (const std::vector<int32_t> &ids : sequences) {
    p->reset();
    auto lp = p->forward(ids, /*allLogits=*/true);
    EXPECT_TRUE(lp);
    if (!lp)
      return result;
    reference.assign(lp->begin(), lp->end());
    const int64_t predicted = static_cast<int64_t>(ids.size()) - 1;
    for (size_t b = 0; b < builds.size(); ++b) {
      auto lq = scoredLogits(sessions[b], ids, decoded);
      EXPECT_TRUE(lq);
      if (!lq)
        return result;
      for (int64_t t = 0; t < predicted; ++t) {
        std::span<const float> ref(reference.data() + t * vocab, vocab);
        std::span<const float> row = lq->subspan(t * vocab, vocab);
        kl[b] += klDivergence(ref, row);
        agree[b] += argmax(ref) == argmax(row);
        // -log softmax(row)[next], in double.
        const float top = *std::max_element(row.begin(), row.end());
        double sum = 0;
        for (float v : row) sum += std::exp(double(v) - top);
        nll[b] += std::log(sum) - (double(row[size_t(ids[t + 1])]) - top);
      }
    }
    tokens += predicted;
  }
  for (size_t b = 0; b < builds.size(); ++b)
    result[b] = Drift{kl[b] / double(tokens), double(agree[b]) / double(tokens),
                      std::exp(nll[b] / double(tokens)), tokens};
  return result;
}

} // namespace lathe::test
