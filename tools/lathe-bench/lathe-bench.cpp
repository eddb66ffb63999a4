// lathe-bench: prompt and generation throughput of an artifact, the figures
// docs/benchmarks.md reports. Runs a fixed prompt of --prompt-tokens tokens as
// one prefill, then --gen-tokens greedy decode steps, --repeat times, and
// prints the median and best of each. With --cached-context N the sequences
// instead start with N cached tokens that are not computed (their keys and
// values are the cache's zeros) and only decode: attention at a long
// context without the long prefill. With --arrival N a prompt of N tokens
// arrives at a scheduler (runtime/serving/Scheduler.h) while --sequences
// sequences decode, under whole, chunked and layered prefill: its time to
// first token and the decoding sequences' worst time between tokens while
// it is prefilled (issue 22). With --tree SHAPE: a speculative
// verification step of SHAPE's full tree against a one-token step
// (TreeStep.h, issue 21).
#include "runtime/artifact/Artifact.h"
#include "runtime/backend/Batch.h"
#include "runtime/engine/Generation.h"
#include "runtime/kv/PagedKVCache.h"
#include "runtime/engine/Session.h"
#include "runtime/serving/Scheduler.h"
#include "tools/CommandLine.h"
#include "tools/SessionFlags.h"
#include "tools/lathe-bench/TreeStep.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <vector>

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "lathe-bench: %s\n", message.c_str());
  return 1;
}

/// The first line of every report: the model, where it runs and how.
void printModelLine(const lathe::artifact::Artifact &artifact, const std::string &path,
                    lathe::backend::Executable &executable, const std::string &kernels) {
  const lathe::artifact::ExternalWeights *external = artifact.externalWeights();
  const std::string weights = artifact.syntheticWeights() ? ", random weights"
                              : external                  ? ", weights from " + external->path
                                                          : "";
  std::printf("model: %s (%s%s), device %s, %s kernels, %d thread(s)\n",
              artifact.config().name.c_str(), path.c_str(), weights.c_str(),
              executable.device().name().c_str(), kernels.c_str(), executable.threads());
}

/// The i-th of the ordinary ids the prompts and steps feed: a cycle
/// through a common range of the vocabulary (past the first 300, the byte
/// and control tokens of a SentencePiece vocabulary, when it has that
/// many).
int32_t ordinaryId(const lathe::plan::ModelConfig &config, int64_t i) {
  const int64_t first = config.vocab > 600 ? 300 : 0;
  return static_cast<int32_t>(first + (i * 37) % (config.vocab - first));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// --arrival: one run of a long prompt arriving at a scheduler while
// `shortPrompts` decode. Times are taken when step() returns, so a
// sequence's time between tokens is the time between the ends of the steps
// that emitted them, as RequestStats counts it.
struct ArrivalRun {
  double ttft = 0;        // submit to the end of the step of the first token
  double worstTbt = 0;    // longest gap of a decoding sequence in the window
  double longestStep = 0; // longest StepStats::seconds in the window
  double decodeStep = 0;  // median gap before the arrival (nothing in flight)
  int64_t steps = 0;      // steps in the window
  std::vector<double> stepSeconds; // StepStats::seconds of each step in the window
};

// Decoding sequences' tokens before the steady state, and steady steps
// whose gaps give the decode baseline.
constexpr int64_t kWarmTokens = 4, kBaselineSteps = 6;

lathe::Expected<ArrivalRun> runArrival(std::shared_ptr<lathe::backend::Executable> executable,
                                       lathe::serving::PrefillPolicy policy, int64_t tokenBudget,
                                       int64_t sequences,
                                       const std::vector<std::vector<int32_t>> &shortPrompts,
                                       const std::vector<int32_t> &longPrompt) {
  using namespace lathe::serving;
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  SchedulerOptions options;
  options.prefill = policy;
  options.tokenBudget = tokenBudget;
  options.maxSequences = sequences + 1;
  auto scheduler = Scheduler::create(executable, options);
  if (!scheduler)
    return scheduler.error();
  const int64_t context = executable->config().context;
  std::map<RequestId, clock::time_point> last; // decoding: its last token
  std::map<RequestId, int64_t> emitted;
  for (const std::vector<int32_t> &prompt : shortPrompts) {
    Request r;
    r.prompt = prompt;
    r.maxNewTokens = context - static_cast<int64_t>(prompt.size());
    auto id = scheduler->submit(std::move(r));
    if (!id)
      return id.error();
    emitted[*id] = 0;
  }
  // A step; every Token event of a decoding sequence gives a gap since its
  // last token (none for its first). A decoding sequence never finishes here.
  auto step = [&](std::vector<double> &gaps, std::vector<RequestId> &others,
                  double &stepSeconds, clock::time_point &end) -> lathe::Status {
    auto result = scheduler->step();
    end = clock::now();
    if (!result)
      return result.error();
    stepSeconds = result->stats.seconds;
    for (const Event &e : result->events) {
      auto it = emitted.find(e.request);
      if (e.kind == Event::Kind::Finished) {
        if (it != emitted.end())
          return lathe::Error("a decoding sequence finished before the arrival's first token");
        continue;
      }
      if (it == emitted.end()) {
        others.push_back(e.request);
        continue;
      }
      if (it->second++ > 0)
        gaps.push_back(seconds(last[e.request], end));
      last[e.request] = end;
    }
    return lathe::Status::ok();
  };
  std::vector<double> gaps;
  std::vector<RequestId> others;
  double stepSeconds = 0;
  clock::time_point end;
  auto warm = [&] {
    for (const auto &[id, n] : emitted)
      if (n < kWarmTokens)
        return false;
    return true;
  };
  while (!warm())
    if (lathe::Status s = step(gaps, others, stepSeconds, end); !s)
      return s.error();
  gaps.clear();
  for (int64_t i = 0; i < kBaselineSteps; ++i)
    if (lathe::Status s = step(gaps, others, stepSeconds, end); !s)
      return s.error();
  ArrivalRun run;
  run.decodeStep = median(gaps);

  Request arrival;
  arrival.prompt = longPrompt;
  arrival.maxNewTokens = 1;
  const clock::time_point submitted = clock::now();
  auto id = scheduler->submit(std::move(arrival));
  if (!id)
    return id.error();
  bool first = false;
  while (!first) {
    // Every decoding sequence emits exactly one token in each step of the
    // window, so its gaps are the window's steps (the events say so).
    gaps.clear();
    others.clear();
    if (lathe::Status s = step(gaps, others, stepSeconds, end); !s)
      return s.error();
    if (gaps.size() != shortPrompts.size())
      return lathe::Error("a decoding sequence skipped a step while the prompt was prefilled");
    ++run.steps;
    run.worstTbt = std::max(run.worstTbt, *std::max_element(gaps.begin(), gaps.end()));
    run.longestStep = std::max(run.longestStep, stepSeconds);
    run.stepSeconds.push_back(stepSeconds);
    first = std::find(others.begin(), others.end(), *id) != others.end();
  }
  run.ttft = seconds(submitted, end);
  return run;
}

int runArrivalMode(const lathe::artifact::Artifact &artifact,
                   std::shared_ptr<const lathe::artifact::Artifact> shared,
                   const lathe::tools::SessionFlags &flags, const std::string &path,
                   int64_t promptTokens, int64_t sequences, int64_t repeat,
                   const std::string &policyName, int64_t chunkTokens) {
  using lathe::serving::PrefillPolicy;
  const auto &config = artifact.config();
  auto executable = lathe::backend::load(std::move(shared), flags.resolve(artifact));
  if (!executable)
    return fail(executable.error().message());
  const int64_t groups = static_cast<int64_t>((*executable)->layerGroups().size());
  const bool hasGroups = groups > 1;
  // "all" means every policy the artifact can run: layered only with groups.
  const bool layered = policyName == "layered" || (policyName == "all" && hasGroups);
  if (policyName == "layered" && !hasGroups)
    return fail(lathe::serving::noLayerGroupsMessage(path, "--policy"));
  if (policyName == "all" && !hasGroups)
    std::fprintf(stderr, "lathe-bench: note: %s has no layer groups: layered prefill left out "
                         "(lathe-compile --prefill-groups=N)\n",
                 path.c_str());
  const int64_t n = hasGroups ? groups : 1;
  constexpr int64_t shortTokens = 8;
  if (promptTokens < 1 || promptTokens >= config.context || sequences < 1 || repeat < 1)
    return fail("--arrival needs 1 <= prompt tokens < context (" +
                std::to_string(config.context) + "), sequences >= 1 and repeat >= 1");
  if (chunkTokens == 0)
    chunkTokens = (promptTokens + n - 1) / n;
  if (chunkTokens < 1)
    return fail("--chunk-tokens must be at least 1, got " + std::to_string(chunkTokens));
  // The decoding sequences' tokens: their prompt, the warm-up (layered
  // admits one prompt every N steps), the baseline and the window.
  const int64_t window = std::max(n, (promptTokens + chunkTokens - 1) / chunkTokens) + 1;
  const int64_t needed = shortTokens + sequences * n + kWarmTokens + kBaselineSteps + window;
  if (needed > config.context)
    return fail("the decoding sequences would need " + std::to_string(needed) +
                " tokens of context (prompt, warm-up and one token per step while the "
                "arrival is prefilled), more than the model's " +
                std::to_string(config.context) + ": use a larger --chunk-tokens or fewer "
                                                 "--sequences");

  const int64_t lo = config.vocab > 600 ? 300 : std::min<int64_t>(3, config.vocab - 1);
  const int32_t bos = static_cast<int32_t>(std::min<int64_t>(1, config.vocab - 1));
  std::vector<std::vector<int32_t>> shortPrompts;
  for (int64_t q = 0; q < sequences; ++q) {
    std::vector<int32_t> p{bos};
    for (int64_t i = 1; i < shortTokens; ++i)
      p.push_back(static_cast<int32_t>(lo + (q * 101 + i * 37) % (config.vocab - lo)));
    shortPrompts.push_back(std::move(p));
  }
  // Ids of a fixed seed in the ordinary range of the vocabulary.
  std::mt19937_64 random(22);
  std::uniform_int_distribution<int64_t> id(lo, config.vocab - 1);
  std::vector<int32_t> longPrompt{bos};
  for (int64_t i = 1; i < promptTokens; ++i)
    longPrompt.push_back(static_cast<int32_t>(id(random)));

  struct Policy {
    PrefillPolicy policy;
    int64_t budget;
    std::string shape;
    std::vector<ArrivalRun> runs;
  };
  std::vector<Policy> policies;
  auto nameOf = [](PrefillPolicy p) { return std::string(lathe::serving::prefillPolicyName(p)); };
  if (policyName == "whole" || policyName == "all")
    // Room for the arrival or a decoding sequence's own prompt in one step
    // (an arrival shorter than those could admit none of them).
    policies.push_back(
        {PrefillPolicy::Whole, sequences + std::max(promptTokens, shortTokens), "-", {}});
  if (policyName == "chunked" || policyName == "all")
    policies.push_back({PrefillPolicy::Chunked, sequences + chunkTokens,
                        "chunk " + std::to_string(chunkTokens), {}});
  if (layered)
    policies.push_back(
        {PrefillPolicy::Layered, sequences + 1, std::to_string(n) + " groups", {}});
  // Interleaved, so that the machine's noise falls on every policy alike.
  // Each measured run follows an unmeasured one of the same policy: the
  // executable keeps the activation buffers of the steps it ran (grown for
  // the largest, and a layered prefill's spare set for the next prompt), and
  // a policy should meet them as a server running only that policy would,
  // not as the previous policy left them.
  for (int64_t r = 0; r < repeat; ++r)
    for (Policy &p : policies)
      for (int pass = 0; pass < 2; ++pass) {
        auto run =
            runArrival(*executable, p.policy, p.budget, sequences, shortPrompts, longPrompt);
        if (!run)
          return fail(nameOf(p.policy) + ": " + run.error().message());
        if (pass == 1)
          p.runs.push_back(*run);
      }

  auto med = [](const std::vector<ArrivalRun> &runs, double ArrivalRun::*field) {
    std::vector<double> v;
    for (const ArrivalRun &r : runs)
      v.push_back(r.*field);
    return median(v);
  };
  // The whole prompt's stall, and the part of it the prompt adds to the
  // running sequences' own decode step (which every policy's worst gap
  // holds too): a layered step can bound only that part to 1 / N.
  double stall = 0, stallAdded = 0;
  for (const Policy &p : policies)
    if (p.policy == PrefillPolicy::Whole) {
      stall = med(p.runs, &ArrivalRun::worstTbt);
      stallAdded = stall - med(p.runs, &ArrivalRun::decodeStep);
    }
  printModelLine(artifact, path, **executable, flags.kernels);
  std::printf("a %lld-token prompt arrives while %lld sequences decode; %lld layer group(s); "
              "medians of %lld repeats\n",
              static_cast<long long>(promptTokens), static_cast<long long>(sequences),
              static_cast<long long>(groups), static_cast<long long>(repeat));
  std::printf("%-8s %-12s %5s %10s %15s %18s %12s %17s %17s %13s\n", "policy", "groups/chunk",
              "steps", "TTFT (ms)", "worst TBT (ms)", "longest step (ms)", "TBT / stall",
              "decode step (ms)", "added stall (ms)", "added / whole");
  for (const Policy &p : policies) {
    const double tbt = med(p.runs, &ArrivalRun::worstTbt);
    const double decode = med(p.runs, &ArrivalRun::decodeStep);
    char ratio[32] = "-", added[32] = "-";
    if (stall > 0)
      std::snprintf(ratio, sizeof ratio, "%.3f", tbt / stall);
    if (stallAdded > 0)
      std::snprintf(added, sizeof added, "%.3f", (tbt - decode) / stallAdded);
    std::printf("%-8s %-12s %5lld %10.2f %15.2f %18.2f %12s %17.2f %17.2f %13s\n",
                nameOf(p.policy).c_str(), p.shape.c_str(), static_cast<long long>(p.runs.front().steps),
                1e3 * med(p.runs, &ArrivalRun::ttft), 1e3 * tbt,
                1e3 * med(p.runs, &ArrivalRun::longestStep), ratio, 1e3 * decode,
                1e3 * (tbt - decode), added);
  }
  // The window's steps one by one (medians): where the prompt's time goes.
  for (const Policy &p : policies) {
    std::printf("%s steps (ms):", nameOf(p.policy).c_str());
    for (size_t i = 0; i < p.runs.front().stepSeconds.size(); ++i) {
      std::vector<double> v;
      for (const ArrivalRun &r : p.runs)
        v.push_back(r.stepSeconds[i]);
      std::printf(" %.2f", 1e3 * median(v));
    }
    std::printf("\n");
  }
  if (stall > 0 && hasGroups)
    std::printf("whole-prompt stall %.2f ms; / %lld groups = %.2f ms (added by the prompt: "
                "%.2f ms; / %lld = %.2f ms)\n",
                1e3 * stall, static_cast<long long>(n), 1e3 * stall / double(n),
                1e3 * stallAdded, static_cast<long long>(n), 1e3 * stallAdded / double(n));
  else if (stall > 0)
    std::printf("whole-prompt stall %.2f ms\n", 1e3 * stall);
  return 0;
}

int runTreeMode(const lathe::artifact::Artifact &artifact,
                std::shared_ptr<const lathe::artifact::Artifact> shared,
                const lathe::tools::SessionFlags &flags, const std::string &path,
                const std::string &shapeText, int64_t cachedContext, int64_t steps,
                int64_t repeat) {
  auto shape = lathe::speculative::parseTreeShape(shapeText);
  if (!shape)
    return fail(shape.error().message());
  if (steps < 1 || repeat < 1)
    return fail("--tree needs --gen-tokens >= 1 and --repeat >= 1");
  const auto &config = artifact.config();
  auto executable = lathe::backend::load(std::move(shared), flags.resolve(artifact));
  if (!executable)
    return fail(executable.error().message());
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < 97; ++i)
    tokens.push_back(ordinaryId(config, i));
  lathe::bench::TreeStepTimes all;
  for (int64_t r = 0; r < repeat; ++r) {
    auto times = lathe::bench::timeTreeSteps(**executable, *shape, cachedContext, steps, tokens);
    if (!times)
      return fail(times.error().message());
    all.oneToken.insert(all.oneToken.end(), times->oneToken.begin(), times->oneToken.end());
    all.tree.insert(all.tree.end(), times->tree.begin(), times->tree.end());
  }
  const double one = median(all.oneToken), tree = median(all.tree);
  printModelLine(artifact, path, **executable, flags.kernels);
  std::printf("cached context %lld tokens, not computed (zero keys and values); medians of "
              "%lld steps of each kind\n",
              static_cast<long long>(cachedContext), static_cast<long long>(all.tree.size()));
  std::printf("one-token step: %.3f ms\n", 1e3 * one);
  std::printf("tree %s, %lld nodes: %.3f ms a step, %.2fx the one-token step\n",
              shape->str().c_str(), static_cast<long long>(shape->nodeCount()), 1e3 * tree,
              tree / one);
  return 0;
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
  int64_t arrival = 0, chunkTokens = 0;
  std::string policy = "all";
  app.add_option("--arrival", arrival,
                 "a prompt of N tokens arrives at the continuous-batching scheduler while "
                 "--sequences sequences (default 4) decode: its time to first token and their "
                 "worst time between tokens under whole, chunked and layered prefill");
  app.add_option("--policy", policy,
                 "--arrival: whole, chunked, layered (an artifact with layer groups: "
                 "lathe-compile --prefill-groups=N) or all (layered only with groups)")
      ->check(CLI::IsMember({"whole", "chunked", "layered", "all"}))
      ->capture_default_str();
  app.add_option("--chunk-tokens", chunkTokens,
                 "--arrival: chunked prefill's prompt tokens per step (default: the prompt "
                 "over the artifact's layer groups, rounded up: layered's bound)");
  std::string treeShape;
  app.add_option("--tree", treeShape,
                 "time a speculative verification step of this tree shape's full tree (e.g. "
                 "3x4x4: 64 nodes with the root) against a one-token step, --gen-tokens of "
                 "each after --cached-context uncomputed tokens (default: --prompt-tokens)");
  lathe::tools::SessionFlags sessionFlags;
  sessionFlags.addTo(app);
  if (auto status = lathe::tools::parseCommandLine(app, argc, argv, "lathe-bench"))
    return *status;
  auto artifact = lathe::artifact::Artifact::load(path, sessionFlags.loadOptions());
  if (!artifact)
    return fail(artifact.error().message());
  if (!treeShape.empty() && (app.count("--arrival") || app.count("--chunk-tokens") ||
                             app.count("--policy") || app.count("--sequences")))
    return fail("--tree times one sequence's steps; it does not go with --arrival, --policy, "
                "--chunk-tokens or --sequences");
  if (arrival != 0 || app.count("--chunk-tokens") || app.count("--policy")) {
    if (arrival < 1)
      return fail("--policy and --chunk-tokens go with --arrival N, N >= 1");
    if (app.count("--chunk-tokens") && chunkTokens < 1)
      return fail("--chunk-tokens must be at least 1, got " + std::to_string(chunkTokens));
    return runArrivalMode(**artifact, *artifact, sessionFlags, path, arrival,
                          app.count("--sequences") ? sequences : 4, repeat, policy, chunkTokens);
  }
  if (!treeShape.empty())
    return runTreeMode(**artifact, *artifact, sessionFlags, path, treeShape,
                       app.count("--cached-context") ? cachedContext : promptTokens, genTokens,
                       repeat);
  const auto &config = (*artifact)->config();
  // Each length alone first: their sum must not wrap. (With a cached
  // context the prompt's length is not used.)
  if (promptTokens < 1 || (cachedContext == 0 && promptTokens > config.context) ||
      genTokens < 0 || genTokens > config.context || cachedContext > config.context ||
      repeat < 1 || sequences < 1 ||
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

  // A deterministic prompt of ordinary tokens: BOS, then ordinaryId's.
  std::vector<int32_t> prompt{static_cast<int32_t>(std::min<int64_t>(1, config.vocab - 1))};
  for (int64_t i = 1; i < promptTokens; ++i)
    prompt.push_back(ordinaryId(config, i));

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
        auto picked = exe.executeGreedy(batch, **kv);
        if (!picked)
          return fail(picked.error().message());
        next = picked.take();
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
    // Greedy: only the argmax comes back (Session::forwardGreedy).
    auto t0 = clock::now();
    auto first = session->forwardGreedy(prompt);
    if (!first)
      return fail(first.error().message());
    auto t1 = clock::now();
    int32_t next = *first;
    for (int64_t i = 0; i < genTokens; ++i) {
      auto picked = session->forwardGreedy(std::span<const int32_t>(&next, 1));
      if (!picked)
        return fail(picked.error().message());
      next = *picked;
    }
    auto t2 = clock::now();
    prefill.push_back(promptTokens / std::chrono::duration<double>(t1 - t0).count());
    if (genTokens > 0)
      decode.push_back(genTokens / std::chrono::duration<double>(t2 - t1).count());
  }
  printModelLine(**artifact, path, session->executable(), sessionFlags.kernels);
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
    // Greedy steps may read less of a weight (the CPU's screened float32
    // classifier: its int8 copy, and a few rows).
    lathe::plan::forEachProduct(plan, [&](uint32_t weight, lathe::plan::Activations) {
      const std::optional<int64_t> greedy = session->executable().greedyWeightBytes(weight);
      weightBytes += greedy ? double(*greedy) : double((*artifact)->tensors()[weight].storageBytes());
    });
    std::printf("weights read per decode step: %.1f MB, %.1f GB/s at the median\n",
                weightBytes * 1e-6, weightBytes * median(decode) / double(sequences) * 1e-9);
  }
  return 0;
}
