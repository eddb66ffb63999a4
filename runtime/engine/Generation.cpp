#include "runtime/engine/Generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <vector>

namespace lathe {
namespace {

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

} // namespace

bool endsText(const GenerationOptions &options, int32_t token) {
  return options.stopAtEndOfText &&
         std::find(options.stopTokens.begin(), options.stopTokens.end(), token) !=
             options.stopTokens.end();
}

Status validateGeneration(const plan::ModelConfig &c, std::span<const int32_t> prompt,
                          const GenerationOptions &options) {
  if (Status s = validatePrompt(c, prompt); !s)
    return s;
  return validateSamplerOptions(options.sampler);
}

Status validatePrompt(const plan::ModelConfig &c, std::span<const int32_t> prompt) {
  if (prompt.empty())
    return Error("the prompt is empty");
  if (Status s = checkTokenIds(c, prompt); !s)
    return s;
  if (static_cast<int64_t>(prompt.size()) > c.context)
    return Error(fmt::format("the prompt is {} tokens, longer than the model's "
                             "context of {} tokens",
                             prompt.size(), c.context));
  return Status::ok();
}

Expected<GenerationStats> generate(Session &session, std::span<const int32_t> prompt,
                                   const GenerationOptions &options,
                                   const TokenSink &sink) {
  const plan::ModelConfig &c = session.config();
  if (Status s = validateGeneration(c, prompt, options); !s)
    return s.error();
  GenerationStats stats;
  stats.promptTokens = static_cast<int64_t>(prompt.size());
  Sampler sampler(options.sampler);

  // Greedy decoding takes the argmax alone (on a GPU the logits stay there).
  const bool greedy = sampler.greedy();
  int32_t picked = 0;
  Expected<std::span<const float>> logits = std::span<const float>();
  auto step = [&](std::span<const int32_t> tokens) -> Status {
    if (greedy) {
      Expected<int32_t> id = session.forwardGreedy(tokens);
      if (!id)
        return id.error();
      picked = *id;
      return Status::ok();
    }
    logits = session.forward(tokens);
    return logits ? Status::ok() : Status(logits.error());
  };
  auto start = std::chrono::steady_clock::now();
  if (Status s = step(prompt); !s)
    return s.error();
  stats.prefillSeconds = secondsSince(start);

  start = std::chrono::steady_clock::now();
  while (stats.generatedTokens < options.maxNewTokens) {
    int32_t next = greedy ? picked : sampler.sampleFrom(*logits);
    if (endsText(options, next))
      break;
    sink(next);
    ++stats.generatedTokens;
    if (stats.generatedTokens == options.maxNewTokens ||
        (options.keepGoing && !options.keepGoing()))
      break;
    if (session.position() >= c.context) {
      stats.reachedContextEnd = true;
      break;
    }
    if (Status s = step(std::span<const int32_t>(&next, 1)); !s)
      return s.error();
  }
  stats.decodeSeconds = secondsSince(start);
  return stats;
}

Expected<std::vector<GenerationStats>>
generateMany(backend::Executable &executable, std::span<const std::vector<int32_t>> prompts,
             const GenerationOptions &options, const SequenceTokenSink &sink) {
  const plan::ModelConfig &c = executable.config();
  if (prompts.empty())
    return Error("no prompts to run");
  for (size_t i = 0; i < prompts.size(); ++i)
    if (Status s = validatePrompt(c, prompts[i]); !s)
      return Error(fmt::format("prompt {}: {}", i + 1, s.error().message()));
  if (Status s = validateSamplerOptions(options.sampler); !s)
    return s.error();

  // Room for every sequence to reach its end: the prompt plus the new
  // tokens, at most the context, in whole blocks.
  const int64_t block = executable.kvLayout(1).blockSize;
  int64_t slots = 0;
  for (const std::vector<int32_t> &p : prompts) {
    // Clamped before adding: -n may be any int64.
    const int64_t newTokens = std::clamp<int64_t>(options.maxNewTokens, 0, c.context);
    const int64_t most = std::min<int64_t>(c.context, int64_t(p.size()) + newTokens);
    slots += (most + block - 1) / block * block;
  }
  auto kv = executable.createKVCache(slots);
  if (!kv)
    return kv.error();

  struct Running {
    backend::SequenceId id;
    Sampler sampler;
    bool done = false;
    int32_t next = 0;
  };
  std::vector<Running> seqs;
  std::vector<GenerationStats> stats(prompts.size());
  backend::Batch batch;
  for (size_t i = 0; i < prompts.size(); ++i) {
    seqs.push_back({(*kv)->addSequence(), Sampler(options.sampler)});
    batch.addChain(seqs[i].id, prompts[i], 0, backend::Batch::Logits::Last);
    stats[i].promptTokens = static_cast<int64_t>(prompts[i].size());
  }
  // Greedy decoding asks the backend for each row's argmax alone (on a GPU
  // the logits then stay there); sampling takes the logits.
  const bool greedy = seqs.front().sampler.greedy();
  std::vector<int32_t> picks;
  Expected<std::span<const float>> logits = std::span<const float>();
  auto step = [&]() -> Status {
    if (greedy) {
      Expected<std::vector<int32_t>> ids = executable.executeGreedy(batch, **kv);
      if (!ids)
        return ids.error();
      picks = ids.take();
      return Status::ok();
    }
    logits = executable.execute(batch, **kv);
    return logits ? Status::ok() : Status(logits.error());
  };
  auto start = std::chrono::steady_clock::now();
  if (Status s = step(); !s)
    return s.error();
  const double prefillSeconds = secondsSince(start);
  start = std::chrono::steady_clock::now();
  if (options.maxNewTokens <= 0)
    for (Running &s : seqs)
      s.done = true;

  std::vector<size_t> rowOf; // logits row -> sequence
  for (size_t i = 0; i < prompts.size(); ++i)
    rowOf.push_back(i);
  while (true) {
    // Sample every running sequence from its row; end those that are done.
    for (size_t r = 0; r < rowOf.size(); ++r) {
      Running &s = seqs[rowOf[r]];
      if (s.done)
        continue;
      GenerationStats &st = stats[rowOf[r]];
      const int32_t next =
          greedy ? picks[r] : s.sampler.sampleFrom(logits->subspan(r * c.vocab, c.vocab));
      if (endsText(options, next)) {
        s.done = true;
        continue;
      }
      sink(rowOf[r], next);
      ++st.generatedTokens;
      s.next = next;
      if (st.generatedTokens >= options.maxNewTokens) {
        s.done = true;
      } else if ((*kv)->length(s.id) >= c.context) {
        st.reachedContextEnd = true;
        s.done = true;
      }
    }
    batch.clear();
    rowOf.clear();
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (seqs[i].done)
        continue;
      const int64_t length = (*kv)->length(seqs[i].id);
      batch.add(seqs[i].id, seqs[i].next, static_cast<int32_t>(length), -1, true);
      rowOf.push_back(i);
    }
    if (batch.empty())
      break;
    if (Status s = step(); !s)
      return s.error();
  }
  const double decodeSeconds = secondsSince(start);
  for (GenerationStats &st : stats) {
    st.prefillSeconds = prefillSeconds;
    st.decodeSeconds = decodeSeconds;
  }
  return stats;
}

namespace {

template <typename AnyTokenizer>
Expected<std::vector<TextSequence>> splitLines(std::string_view text,
                                               const AnyTokenizer &tokenizer) {
  std::vector<TextSequence> sequences;
  size_t lineNo = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++lineNo;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos)
      continue;
    Expected<std::vector<int32_t>> ids = tokenizer.encode(line, /*addBos=*/true);
    if (!ids)
      return Error(fmt::format("line {}: {}", lineNo, ids.error().message()));
    sequences.push_back({lineNo, ids.take()});
  }
  return sequences;
}

} // namespace

Expected<std::vector<TextSequence>> tokenizeLines(std::string_view text,
                                                  const Tokenizer &tokenizer) {
  return splitLines(text, tokenizer);
}

Expected<std::vector<TextSequence>> tokenizeLines(std::string_view text,
                                                  const TextTokenizer &tokenizer) {
  return splitLines(text, tokenizer);
}

double logPartition(std::span<const float> logits) {
  double maxLogit = logits.empty() ? 0.0 : logits[0];
  for (float l : logits)
    maxLogit = std::max(maxLogit, double(l));
  double sum = 0;
  for (float l : logits)
    sum += std::exp(double(l) - maxLogit);
  return maxLogit + std::log(sum);
}

double klDivergence(std::span<const float> reference, std::span<const float> logits) {
  const double zp = logPartition(reference), zq = logPartition(logits);
  double kl = 0;
  for (size_t v = 0; v < reference.size(); ++v) {
    const double logP = double(reference[v]) - zp;
    kl += std::exp(logP) * (logP - (double(logits[v]) - zq));
  }
  // Rounding can leave an identical distribution a hair below zero.
  return std::max(kl, 0.0);
}

Expected<PerplexityResult> perplexity(Session &session, const Tokenizer &tokenizer,
                                      std::string_view text) {
  Expected<std::vector<TextSequence>> lines = tokenizeLines(text, tokenizer);
  if (!lines)
    return lines.error();
  return perplexityOf(session, *lines);
}

Expected<PerplexityResult> perplexity(Session &session, const TextTokenizer &tokenizer,
                                      std::string_view text) {
  Expected<std::vector<TextSequence>> lines = tokenizeLines(text, tokenizer);
  if (!lines)
    return lines.error();
  return perplexityOf(session, *lines);
}

Expected<PerplexityResult> perplexityOf(Session &session,
                                        const std::vector<TextSequence> &sequences) {
  PerplexityResult result;
  auto start = std::chrono::steady_clock::now();
  const int64_t vocab = session.config().vocab;
  for (const TextSequence &sequence : sequences) {
    const std::vector<int32_t> &ids = sequence.ids;
    if (static_cast<int64_t>(ids.size()) > session.config().context)
      return Error(fmt::format("line {} is {} tokens, longer than the model's "
                               "context of {} tokens",
                               sequence.lineNo, ids.size(), session.config().context));
    if (ids.size() < 2)
      continue;
    session.reset();
    Expected<std::span<const float>> logits = session.forward(ids, /*allLogits=*/true);
    if (!logits)
      return logits.error();
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const float *row = logits->data() + i * vocab;
      result.totalNll += logPartition({row, static_cast<size_t>(vocab)}) - double(row[ids[i + 1]]);
      ++result.predictedTokens;
    }
    ++result.sequences;
  }
  session.reset();
  if (result.predictedTokens == 0)
    return Error("no text to score: every line is empty or a single token");
  result.perplexity = std::exp(result.totalNll / double(result.predictedTokens));
  result.seconds = secondsSince(start);
  return result;
}

} // namespace lathe
