// lathe-bench: prompt and generation throughput of an artifact, the figures
// docs/benchmarks.md reports. Runs a fixed prompt of --prompt-tokens tokens as
// one prefill, then --gen-tokens greedy decode steps, --repeat times, and
// prints the median and best of each.
#include "runtime/artifact/Artifact.h"
#include "runtime/engine/Generation.h"
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
  int64_t promptTokens = 128, genTokens = 128, repeat = 5, sequences = 1;
  app.add_option("artifact", path, "compiled .lathe file")->required();
  app.add_option("--prompt-tokens", promptTokens, "prompt length")->capture_default_str();
  app.add_option("--gen-tokens", genTokens, "tokens to generate")->capture_default_str();
  app.add_option("--repeat", repeat, "repetitions (median reported)")->capture_default_str();
  app.add_option("--sequences", sequences,
                 "sequences decoding together in each step (the batch form; tokens/s "
                 "counts every sequence's tokens)")
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
      promptTokens + genTokens > config.context)
    return fail("need 1 <= prompt tokens, prompt + generated tokens <= context (" +
                std::to_string(config.context) + "), repeat >= 1, sequences >= 1");
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
  if (sequences > 1) {
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
  for (int64_t r = 0; r < repeat && sequences == 1; ++r) {
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
