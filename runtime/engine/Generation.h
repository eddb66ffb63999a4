// Text generation and perplexity over a Session: the loops behind lathe-run,
// kept in the library so that tests and other programs share them.
#pragma once

#include "runtime/engine/Session.h"
#include "runtime/sampling/Sampler.h"
#include "runtime/tokenizer/TextTokenizer.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

namespace lathe {

struct GenerationOptions {
  /// New tokens to produce; generation also ends at the context's end.
  int64_t maxNewTokens = 256;
  /// End at end-of-sequence (EOS) or at a new beginning-of-sequence (BOS):
  /// llama2.c-style story models separate texts with BOS. Neither is emitted.
  bool stopAtEndOfText = true;
  /// The ids that end the text: llama2.c's EOS and BOS unless the tokenizer
  /// says otherwise (TextTokenizer::stopTokens).
  std::vector<int32_t> stopTokens = {Tokenizer::kEos, Tokenizer::kBos};
  SamplerOptions sampler;
  /// Asked after each token reaches the sink (generate() only): false ends
  /// generation there, as the C API's callback asks.
  std::function<bool()> keepGoing;
};

struct GenerationStats {
  int64_t promptTokens = 0;
  int64_t generatedTokens = 0;
  double prefillSeconds = 0;
  double decodeSeconds = 0;
  bool reachedContextEnd = false;
};

/// Checks that `prompt` can run from position 0: non-empty, every id inside
/// the vocabulary, no longer than the context. Callers that print before
/// generating check first, so that a refused prompt prints nothing.
Status validatePrompt(const plan::ModelConfig &config, std::span<const int32_t> prompt);

/// validatePrompt, and the sampler's options: what every generation loop
/// checks before its first step.
Status validateGeneration(const plan::ModelConfig &config, std::span<const int32_t> prompt,
                          const GenerationOptions &options);

/// Whether `token` ends the text (options.stopAtEndOfText and one of its
/// stop tokens): it is then not emitted.
bool endsText(const GenerationOptions &options, int32_t token);

/// Receives each new token as soon as it is chosen.
using TokenSink = std::function<void(int32_t token)>;

/// Runs the prompt as one prefill step, then decodes. The session must be at
/// position 0. A prompt longer than the context is an error, never truncated.
Expected<GenerationStats> generate(Session &session, std::span<const int32_t> prompt,
                                   const GenerationOptions &options,
                                   const TokenSink &sink);

/// Receives each new token of prompt `index` as soon as it is chosen.
using SequenceTokenSink = std::function<void(size_t index, int32_t token)>;

/// Runs every prompt as its own sequence of one KV cache, all in the same
/// steps (the batch form): one step prefills every prompt, then each step
/// decodes one token of every sequence still running. Each sequence samples
/// with its own sampler built from `options`, so that it gets the tokens it
/// would get alone. Stats are per prompt; the seconds are those of the
/// shared steps.
Expected<std::vector<GenerationStats>>
generateMany(backend::Executable &executable, std::span<const std::vector<int32_t>> prompts,
             const GenerationOptions &options, const SequenceTokenSink &sink);

/// One line of a text: its number (from 1) and its token ids, BOS first.
struct TextSequence {
  size_t lineNo = 0;
  std::vector<int32_t> ids;
};

/// Every non-empty line of `text` as its own sequence: a trailing '\r' is
/// dropped and whitespace-only lines are skipped. The one definition of "a
/// line of text" that perplexity, calibration and lathe-eval share. Fails
/// (naming the line) where the tokenizer does (TextTokenizer::encode).
Expected<std::vector<TextSequence>> tokenizeLines(std::string_view text,
                                                  const Tokenizer &tokenizer);
/// The same with either kind of tokenizer (special tokens as configured).
Expected<std::vector<TextSequence>> tokenizeLines(std::string_view text,
                                                  const TextTokenizer &tokenizer);

/// log(sum_v exp(logits[v])), in double with the maximum subtracted first:
/// a token's log-probability is its logit minus this. The one definition
/// that perplexity and lathe-eval's KL divergence share.
double logPartition(std::span<const float> logits);

/// KL(P || Q) in nats of the next-token distributions of two rows of
/// logits (reference P, build Q), in double; never below zero.
double klDivergence(std::span<const float> reference, std::span<const float> logits);

struct PerplexityResult {
  double perplexity = 0;
  double totalNll = 0;          // natural log
  int64_t predictedTokens = 0;
  int64_t sequences = 0;
  double seconds = 0;
};

/// Scores every non-empty line of `text` as its own sequence (BOS first):
/// exp of the mean negative log-likelihood of each next token.
Expected<PerplexityResult> perplexity(Session &session, const Tokenizer &tokenizer,
                                      std::string_view text);
Expected<PerplexityResult> perplexity(Session &session, const TextTokenizer &tokenizer,
                                      std::string_view text);
/// The same over lines already tokenized.
Expected<PerplexityResult> perplexityOf(Session &session,
                                        const std::vector<TextSequence> &sequences);

} // namespace lathe
