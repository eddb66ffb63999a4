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

#include <cmath>
#include <memory>
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
    auto lq = q->forward(ids, /*allLogits=*/true);
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

} // namespace lathe::test
