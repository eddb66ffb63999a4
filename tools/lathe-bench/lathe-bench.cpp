// lathe-bench: prompt and generation throughput of an artifact, the figures
// docs/benchmarks.md reports. Runs a fixed prompt of --prompt-tokens tokens as
// one prefill, then --gen-tokens greedy decode steps, --repeat times, and
// prints the median and best of each. With --cached-context N the sequences
// instead start with N cached tokens that are not computed (their keys and
// values are the cache's zeros) and only decode: attention at a long
// context without the long prefill.
#include "runtime/artifact/Artifact.h"
#include "runtime/backend/Batch.h"
#include "runtime/engine/Generation.h"
#include "runtime/kv/PagedKVCache.h"
#include "runtime/engine/Session.h"
#include "runtime/sampling/Sampler.h"
#include "tools/CommandLine.h"
#include "tools/SessionFlags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "lathe-bench: %s\n", message.c_str());
  return 1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"lathe-bench: measure prompt and generation tokens/s"};
  std::string path;
  int64_t promptTokens = 128, genTokens = 128, repeat = 5, sequences = 1, cachedContext = 0;
  app.add_option("artifact", path, "compiled .lathe file")->required();
  app.add_option("--prompt-tokens", promptTokens, "prompt length")->capture_default_str();
  app.add_option("--gen-tokens", genTokens, "tokens to generate")->capture_default_str();
  app.add_option("--repeat", repeat, "repetitions (median reported)")->capture_default_str();
  app.add_option("--sequences", sequences,
                 "sequences decoding together in each step (the batch form; tokens/s "
                 "counts every sequence's tokens)")
      ->capture_default_str();
  app.add_option("--cached-context", cachedContext,
                 "benchmarks only: each sequence starts with N cached tokens that are not "
                 "computed (zero keys and values) and decodes --gen-tokens from there, with "
                 "no prefill (decode speed at a long context)")
      ->capture_default_str();
  lathe::tools::SessionFlags sessionFlags;
  sessionFlags.addTo(app);
  if (auto status = lathe::tools::parseCommandLine(app, argc, argv, "lathe-bench"))
    return *status;
  auto artifact = lathe::artifact::Artifact::load(path, sessionFlags.memory());
  if (!artifact)
    return fail(artifact.error().message());
  const auto &config = (*artifact)->config();
  if (promptTokens < 1 || genTokens < 0 || repeat < 1 || sequences < 1 ||
      (cachedContext == 0 && promptTokens + genTokens > config.context) || cachedContext < 0 ||
      (cachedContext > 0 && (genTokens < 1 || cachedContext + genTokens > config.context)))
    return fail("need 1 <= prompt tokens, prompt (or cached context) + generated tokens <= "
                "context (" +
                std::to_string(config.context) +
                "), repeat >= 1, sequences >= 1, and generated tokens >= 1 with a cached "
                "context");
  auto session = lathe::Session::create(*artifact, sessionFlags.resolve(**artifact));
  if (!session)
    return fail(session.error().message());

  // A deterministic prompt of ordinary tokens: BOS, then ids cycling through
  // a common range of the vocabulary (past the first 300, the byte and
  // control tokens of a SentencePiece vocabulary, when it has that many).
  const int64_t first = config.vocab > 600 ? 300 : 0;
  std::vector<int32_t> prompt{static_cast<int32_t>(std::min<int64_t>(1, config.vocab - 1))};
  for (int64_t i = 1; i < promptTokens; ++i)
    prompt.push_back(static_cast<int32_t>(first + (i * 37) % (config.vocab - first)));

  std::vector<double> prefill, decode;
  using clock = std::chrono::steady_clock;
  if (cachedContext > 0) {
    // Fresh zeroed caches each repetition; one token of every sequence a
    // step, greedy, none stopping early.
    lathe::backend::Executable &exe = session->executable();
    for (int64_t r = 0; r < repeat; ++r) {
      const int64_t block = exe.kvLayout(1).blockSize;
      auto kv = exe.createKVCache(sequences *
                                  ((cachedContext + genTokens + block - 1) / block * block));
      if (!kv)
        return fail(kv.error().message());
      std::vector<lathe::backend::SequenceId> ids;
      std::vector<int32_t> next;
      for (int64_t q = 0; q < sequences; ++q) {
        ids.push_back((*kv)->addSequence());
        if (auto grown = (*kv)->grow(ids.back(), cachedContext); !grown)
          return fail(grown.error().message());
        next.push_back(prompt[prompt.size() > 1 ? 1 + q % int64_t(prompt.size() - 1) : 0]);
      }
      lathe::backend::Batch batch;
      auto t0 = clock::now();
      for (int64_t i = 0; i < genTokens; ++i) {
        batch.clear();
        for (int64_t q = 0; q < sequences; ++q)
          batch.add(ids[q], next[q], int32_t(cachedContext + i), -1, true);
        auto logits = exe.execute(batch, **kv);
        if (!logits)
          return fail(logits.error().message());
        for (int64_t q = 0; q < sequences; ++q)
          next[q] = lathe::argmax(logits->subspan(q * config.vocab, config.vocab));
      }
      decode.push_back(double(genTokens * sequences) /
                       std::chrono::duration<double>(clock::now() - t0).count());
    }
  } else if (sequences > 1) {
    // Every sequence its own prompt (the same ids rotated), all prefilled
    // in one step, then one token of each per step, none stopping early.
    std::vector<std::vector<int32_t>> prompts;
    for (int64_t q = 0; q < sequences; ++q) {
      std::vector<int32_t> p = prompt;
      std::rotate(p.begin() + 1, p.begin() + 1 + q % (promptTokens > 1 ? promptTokens - 1 : 1),
                  p.end());
      prompts.push_back(std::move(p));
    }
    lathe::GenerationOptions options;
    options.maxNewTokens = genTokens;
    options.stopAtEndOfText = false;
    for (int64_t r = 0; r < repeat; ++r) {
      auto stats = lathe::generateMany(session->executable(), prompts, options,
                                       [](size_t, int32_t) {});
      if (!stats)
        return fail(stats.error().message());
      const lathe::GenerationStats &s = stats->front();
      prefill.push_back(double(promptTokens * sequences) / s.prefillSeconds);
      if (genTokens > 0)
        decode.push_back(double(genTokens * sequences) / s.decodeSeconds);
    }
  }
  for (int64_t r = 0; r < repeat && sequences == 1 && cachedContext == 0; ++r) {
    session->reset();
    auto t0 = clock::now();
    auto logits = session->forward(prompt);
    if (!logits)
      return fail(logits.error().message());
    auto t1 = clock::now();
    int32_t next = lathe::argmax(*logits);
    for (int64_t i = 0; i < genTokens; ++i) {
      auto l = session->forward(std::span<const int32_t>(&next, 1));
      if (!l)
        return fail(l.error().message());
      next = lathe::argmax(*l);
    }
    auto t2 = clock::now();
    prefill.push_back(promptTokens / std::chrono::duration<double>(t1 - t0).count());
    if (genTokens > 0)
      decode.push_back(genTokens / std::chrono::duration<double>(t2 - t1).count());
  }
  std::printf("model: %s (%s%s), device %s, %s kernels, %d thread(s)\n", config.name.c_str(),
              path.c_str(), (*artifact)->syntheticWeights() ? ", random weights" : "",
              session->executable().device().name().c_str(), sessionFlags.kernels.c_str(),
              session->threads());
  if (sequences > 1)
    std::printf("%lld sequences in every step (tokens/s below count all of them)\n",
                static_cast<long long>(sequences));
  if (cachedContext > 0)
    std::printf("cached context %lld tokens, not computed (zero keys and values)\n",
                static_cast<long long>(cachedContext));
  else
    std::printf("prompt %lld tokens: median %.1f tokens/s, best %.1f\n",
                static_cast<long long>(promptTokens), median(prefill),
                *std::max_element(prefill.begin(), prefill.end()));
  if (!decode.empty()) {
    std::printf("generation %lld tokens: median %.1f tokens/s, best %.1f\n",
                static_cast<long long>(genTokens), median(decode),
                *std::max_element(decode.begin(), decode.end()));
    // A decode step reads every weight of every product once (the KV cache
    // comes on top): the bandwidth the median implies.
    double weightBytes = 0;
    const lathe::plan::KernelPlan &plan =
        *(*artifact)->schedule(session->executable().options().target);
    lathe::plan::forEachProduct(plan, [&](uint32_t weight, lathe::plan::Activations) {
      weightBytes += double((*artifact)->tensors()[weight].storageBytes());
    });
    std::printf("weights read per decode step: %.1f MB, %.1f GB/s at the median\n",
                weightBytes * 1e-6, weightBytes * median(decode) / double(sequences) * 1e-9);
  }
  return 0;
}
