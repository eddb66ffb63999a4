// lathe-run: run a compiled artifact: generate text from a prompt or score a
// text file's perplexity. Bad input gets one line on stderr and exit code 1.
#include "runtime/artifact/Artifact.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
#include "runtime/serving/Scheduler.h"
#include "runtime/speculative/DraftFiles.h"
#include "runtime/speculative/SpeculativeGeneration.h"
#include "runtime/tokenizer/OpenTokenizer.h"
#include "runtime/tokenizer/TextTokenizer.h"
#include "tools/CommandLine.h"
#include "tools/SessionFlags.h"
#include "tools/SpeculateFlag.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "lathe-run: %s\n", message.c_str());
  return 1;
}

/// "1,2,3" -> ids; rejects anything that is not a comma-separated integer list.
lathe::Expected<std::vector<int32_t>> parseIds(const std::string &text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos)
      end = text.size();
    std::string item = text.substr(pos, end - pos);
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() ||
        value < INT32_MIN || value > INT32_MAX)
      return lathe::Error("--prompt-ids: '" + item +
                          "' is not a token id (expected e.g. 1,2,3)");
    ids.push_back(static_cast<int32_t>(value));
    pos = end + 1;
  }
  return ids;
}

/// One stderr line on what the KV cache costs: its format, the bytes one
/// token takes across every layer (keys and values, scales included), and
/// the bytes of the tokens this run stored, `lengths` of them in each
/// sequence. Windowed formats also keep each sequence's newest tokens in f32:
/// the line names that window and counts it in the total.
void printKvUse(const lathe::backend::Executable &executable, std::span<const int64_t> lengths) {
  const lathe::kv::KVLayout layout = executable.kvLayout(1);
  const double perToken = static_cast<double>(layout.tokenBytes());
  int64_t tokens = 0;
  double total = 0;
  for (int64_t length : lengths) {
    tokens += length;
    total += layout.sequenceBytes(length);
  }
  std::string window;
  if (layout.windowed())
    window = " (and an f32 window of the newest " + std::to_string(layout.format.window) +
             " to " + std::to_string(layout.format.window + layout.blockSize - 1) +
             " tokens a sequence, " + std::to_string(layout.windowTokenBytes()) +
             " bytes per token)";
  std::fprintf(stderr, "KV cache: %s, %.0f bytes per token%s; %lld tokens, %.1f KiB\n",
               lathe::formats::kvFormatName(layout.format).c_str(), perToken, window.c_str(),
               static_cast<long long>(tokens), total / 1024);
}

/// What --prompts ran, for its report: each prompt's outputs and counts.
struct PromptsRun {
  std::vector<std::vector<int32_t>> outputs;
  std::vector<int64_t> promptTokens, generatedTokens;
  double prefillSeconds = 0, decodeSeconds = 0;
  /// Speculating: verification steps, trees verified (a sequence's decode
  /// in a step), drafted and accepted nodes.
  int64_t steps = 0, trees = 0, drafted = 0, accepted = 0;
};

/// --prompts with --speculate: every prompt is a request of one scheduler
/// (all of them running together, as generateMany runs them), each
/// decoding sequence verifying a drafted tree a step. Greedy gives plain
/// decoding's tokens; sampling the same text whenever the logits agree.
lathe::Expected<PromptsRun> speculatePrompts(lathe::backend::Executable &executable,
                                             const std::vector<std::vector<int32_t>> &prompts,
                                             const lathe::GenerationOptions &gen,
                                             const lathe::speculative::SpeculativeOptions &spec) {
  namespace serving = lathe::serving;
  PromptsRun run;
  run.outputs.resize(prompts.size());
  run.promptTokens.resize(prompts.size());
  run.generatedTokens.resize(prompts.size());
  serving::SchedulerOptions options;
  options.prefill = serving::PrefillPolicy::Chunked;
  options.maxSequences = static_cast<int64_t>(prompts.size());
  // Room for every sequence's full tree (within 8192 tokens a step), and
  // prompts in big chunks.
  options.tokenBudget = std::max<int64_t>(
      options.maxSequences,
      std::min<int64_t>(8192, std::max<int64_t>(512, options.maxSequences *
                                                         int64_t(spec.shape.nodes().size()))));
  // The cache generateMany would make: each prompt and its new tokens in
  // whole blocks, not a whole context a sequence (a tree stays within its
  // request's blocks).
  const lathe::plan::ModelConfig &config = executable.config();
  const int64_t block = executable.kvLayout(1).blockSize;
  for (const std::vector<int32_t> &prompt : prompts) {
    const int64_t tokens = std::min<int64_t>(
        config.context, int64_t(prompt.size()) + std::min(gen.maxNewTokens, config.context));
    options.kvTokens += (tokens + block - 1) / block * block;
  }
  options.speculate = spec.shape;
  options.drafting = spec.drafting;
  options.drafter = spec.drafter;
  // The scheduler keeps the executable alive through a shared pointer; this
  // one is owned by main, which outlives it.
  std::shared_ptr<lathe::backend::Executable> shared(&executable,
                                                     [](lathe::backend::Executable *) {});
  auto scheduler = serving::Scheduler::create(shared, options);
  if (!scheduler)
    return scheduler.error();
  std::vector<size_t> indexOf; // request id - 1 -> prompt
  for (size_t i = 0; i < prompts.size(); ++i) {
    serving::Request request;
    request.prompt = prompts[i];
    request.sampler = gen.sampler;
    request.maxNewTokens = gen.maxNewTokens;
    if (gen.stopAtEndOfText)
      request.stopTokens = gen.stopTokens;
    auto id = scheduler->submit(std::move(request));
    if (!id)
      return id.error();
    run.promptTokens[i] = static_cast<int64_t>(prompts[i].size());
    indexOf.push_back(i);
  }
  while (scheduler->busy()) {
    auto step = scheduler->step();
    if (!step)
      return step.error();
    const serving::StepStats &st = step->stats;
    const int64_t trees = st.decodeTokens - st.draftedTokens;
    if (trees > 0) {
      ++run.steps;
      run.trees += trees;
      run.drafted += st.draftedTokens;
      run.accepted += st.acceptedDrafts;
    }
    // A step's time goes to prefill and decoding by their shares of its
    // tokens (a step carries prompt chunks beside trees when the prompts
    // exceed one step's budget).
    const double prefillShare = st.tokens ? double(st.prefillTokens) / double(st.tokens) : 0.0;
    run.prefillSeconds += st.seconds * prefillShare;
    run.decodeSeconds += st.seconds * (1 - prefillShare);
    for (const serving::Event &e : step->events)
      if (e.kind == serving::Event::Kind::Token) {
        const size_t i = indexOf[e.request - 1];
        run.outputs[i].push_back(e.token);
        ++run.generatedTokens[i];
      }
  }
  return run;
}

/// --prompts: every non-empty line of `path` is a sequence; all decode in
/// the same steps, and each one's output is printed on its own line, in
/// order, once all are done (a newline inside a text is printed as \n, a
/// carriage return as \r, a NUL byte as \0 and a backslash as \\, so
/// that line i of the output belongs to prompt i). With `spec`, the
/// sequences speculate.
int runPrompts(lathe::backend::Executable &executable, const lathe::TextTokenizer &tokenizer,
               const std::string &path, const lathe::GenerationOptions &gen, bool printIds,
               const lathe::speculative::SpeculativeOptions *spec,
               const lathe::speculative::DraftFiles &draftFiles) {
  auto text = lathe::readTextFile(path);
  if (!text)
    return fail(text.error().message());
  auto tokenized = lathe::tokenizeLines(*text, tokenizer);
  if (!tokenized)
    return fail(path + ":" + tokenized.error().message());
  std::vector<lathe::TextSequence> lines = tokenized.take();
  if (lines.empty())
    return fail(path + ": no prompts: every line is empty");
  std::vector<std::vector<int32_t>> prompts;
  for (const lathe::TextSequence &line : lines) {
    if (lathe::Status s = lathe::validatePrompt(executable.config(), line.ids); !s)
      return fail(path + ":" + std::to_string(line.lineNo) + ": " + s.error().message());
    prompts.push_back(line.ids);
  }
  PromptsRun run;
  // -n 0: nothing to decode, and a request asks for at least one token.
  if (spec && gen.maxNewTokens > 0) {
    auto got = speculatePrompts(executable, prompts, gen, *spec);
    if (!got)
      return fail(got.error().message());
    run = got.take();
  } else {
    run.outputs.resize(prompts.size());
    auto stats = lathe::generateMany(
        executable, prompts, gen, [&](size_t i, int32_t token) { run.outputs[i].push_back(token); });
    if (!stats)
      return fail(stats.error().message());
    for (const lathe::GenerationStats &st : *stats) {
      run.promptTokens.push_back(st.promptTokens);
      run.generatedTokens.push_back(st.generatedTokens);
    }
    run.prefillSeconds = stats->front().prefillSeconds;
    run.decodeSeconds = stats->front().decodeSeconds;
  }
  const std::vector<std::vector<int32_t>> &outputs = run.outputs;
  int64_t promptTokens = 0, generated = 0;
  std::vector<int64_t> stored;
  for (size_t i = 0; i < prompts.size(); ++i) {
    promptTokens += run.promptTokens[i];
    generated += run.generatedTokens[i];
    // The last token chosen is never run, so never stored.
    stored.push_back(run.promptTokens[i] + std::max<int64_t>(run.generatedTokens[i] - 1, 0));
    std::string line;
    if (printIds) {
      for (size_t j = 0; j < outputs[i].size(); ++j)
        line += (j ? " " : "") + std::to_string(outputs[i][j]);
    } else {
      line = tokenizer.decodeSequence(prompts[i], outputs[i]);
      // One line per sequence: newlines, carriage returns, NUL bytes and
      // backslashes are escaped, so the line reads back unambiguously.
      std::string escaped;
      for (char ch : line)
        escaped += ch == '\n'   ? std::string("\\n")
                   : ch == '\r' ? std::string("\\r")
                   : ch == '\0' ? std::string("\\0")
                   : ch == '\\' ? std::string("\\\\")
                                 : std::string(1, ch);
      line = escaped;
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  std::fflush(stdout);
  std::fprintf(stderr,
               "%zu sequences; prompt: %lld tokens, %.1f tokens/s; generation: %lld tokens, "
               "%.1f tokens/s\n",
               prompts.size(), static_cast<long long>(promptTokens),
               promptTokens / std::max(run.prefillSeconds, 1e-9),
               static_cast<long long>(generated), generated / std::max(run.decodeSeconds, 1e-9));
  if (spec) {
    std::fprintf(stderr,
                 "speculative decoding, tree %s: %lld steps verifying %lld trees, %.2f "
                 "accepted tokens per tree (%lld of %lld drafted tokens accepted); a node cost "
                 "%.2f of a step of one sequence (%s)\n",
                 spec->shape.str().c_str(), static_cast<long long>(run.steps),
                 static_cast<long long>(run.trees),
                 run.trees ? double(run.trees + run.accepted) / double(run.trees) : 0.0,
                 static_cast<long long>(run.accepted), static_cast<long long>(run.drafted),
                 spec->drafter->cost().nodeCost(),
                 spec->drafter->cost().measured() ? "measured" : "assumed");
    std::vector<std::vector<int32_t>> texts; // each prompt and its output, in order
    for (size_t i = 0; i < prompts.size() && draftFiles.any(); ++i) {
      texts.push_back(prompts[i]);
      texts.back().insert(texts.back().end(), outputs[i].begin(), outputs[i].end());
    }
    if (lathe::Status s = lathe::speculative::keepDrafter(*spec->drafter, draftFiles, texts); !s)
      return fail(s.error().message());
  }
  printKvUse(executable, stored);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"lathe-run: run a Lathe artifact"};
  std::string artifactPath, prompt, promptIds, perplexityFile, promptsFile;
  lathe::speculative::DraftFiles draftFiles;
  int64_t maxTokens = -1;
  lathe::GenerationOptions gen;
  bool printIds = false, ignoreEos = false;
  app.add_option("artifact", artifactPath, "compiled .lathe file")->required();
  auto *promptOpt = app.add_option("--prompt", prompt, "text to continue");
  auto *idsOpt = app.add_option("--prompt-ids", promptIds,
                                "token ids to continue, e.g. 1,9038,2501");
  auto *pplOpt = app.add_option("--perplexity", perplexityFile,
                                "score each non-empty line of FILE");
  auto *promptsOpt = app.add_option("--prompts", promptsFile,
                                    "continue every non-empty line of FILE as its own "
                                    "sequence, all decoded together; one output line each");
  promptOpt->excludes(idsOpt)->excludes(pplOpt)->excludes(promptsOpt);
  idsOpt->excludes(pplOpt)->excludes(promptsOpt);
  pplOpt->excludes(promptsOpt);
  app.add_option("-n,--max-tokens", maxTokens,
                 "tokens to generate (default: up to the end of the context)");
  app.add_option("--temperature", gen.sampler.temperature, "0 = greedy")->capture_default_str();
  app.add_option("--top-p", gen.sampler.topP, "nucleus sampling threshold")->capture_default_str();
  app.add_option("--top-k", gen.sampler.topK, "keep the k best tokens (0 = all)")->capture_default_str();
  app.add_option("--seed", gen.sampler.seed, "random seed for sampling")->capture_default_str();
  app.add_flag("--print-ids", printIds, "print generated token ids instead of text");
  lathe::tools::SessionFlags sessionFlags;
  sessionFlags.addTo(app);
  lathe::tools::SpeculateFlag speculateFlag;
  auto *speculateOpt = speculateFlag.addTo(app);
  speculateOpt->excludes(pplOpt);
  app.add_option("--draft-history", draftFiles.history,
                 "with --speculate: draft n-grams from the earlier texts in FILE too (one "
                 "per line, token ids separated by spaces, as --print-ids prints them; a "
                 "missing file is none), then append this run's prompts and outputs to it")
      ->needs(speculateOpt);
  app.add_option("--draft-state", draftFiles.state,
                 "with --speculate: start the drafter from what it learnt in earlier runs "
                 "(Token Recycling's tables and the acceptance of each kind of draft), kept "
                 "in FILE (a missing file is none), and write it back after this run")
      ->needs(speculateOpt);
  app.add_flag("--ignore-eos", ignoreEos, "keep generating past the end of the text (EOS, or a BOS starting a new text)");
  if (auto status = lathe::tools::parseCommandLine(app, argc, argv, "lathe-run"))
    return *status;
  if (*idsOpt && promptIds.empty())
    return fail("--prompt-ids is empty");
  if (prompt.empty() && promptIds.empty() && perplexityFile.empty() && promptsFile.empty())
    return fail(*promptOpt ? "--prompt is empty"
                           : "nothing to do: pass --prompt, --prompts, --prompt-ids or "
                             "--perplexity");
  if (*promptOpt && prompt.empty())
    return fail("--prompt is empty");
  if (app.count("-n") && maxTokens < 0)
    return fail("-n must be at least 0");
  if (lathe::Status s = lathe::validateSamplerOptions(gen.sampler); !s)
    return fail(s.error().message());

  auto speculateChoice = speculateFlag.choice();
  if (!speculateChoice)
    return fail(speculateChoice.error().message());
  const std::string speculate = speculateChoice->value_or("");

  auto artifact = lathe::artifact::Artifact::load(artifactPath, sessionFlags.loadOptions());
  if (!artifact)
    return fail(artifact.error().message());
  auto executable = lathe::backend::load(*artifact, sessionFlags.resolve(**artifact));
  if (!executable)
    return fail(executable.error().message());
  lathe::speculative::SpeculativeOptions speculative;
  if (*speculateOpt) {
    auto shape = lathe::speculative::resolveTreeShape(**executable, speculate);
    if (!shape)
      return fail("--speculate: " + shape.error().message());
    speculative.shape = shape.take();
    // One drafter for the run, from the files: what it learns can be kept.
    auto drafter = lathe::speculative::openDrafter((*artifact)->config().vocab, speculative.shape,
                                                   speculative.drafting, draftFiles);
    if (!drafter)
      return fail(drafter.error().message());
    speculative.drafter = drafter.take();
  }
  const int threads = (*executable)->threads();
  if (sessionFlags.options.threads > threads) {
    if (sessionFlags.kernels == "reference")
      std::fprintf(stderr, "lathe-run: note: --threads %d: the reference kernels run on one "
                           "thread\n",
                   sessionFlags.options.threads);
    else
      std::fprintf(stderr,
                   "lathe-run: note: --threads %d is more than the %d cores available; "
                   "using %d\n",
                   sessionFlags.options.threads, threads, threads);
  }

  auto carried = lathe::artifactTokenizer(**artifact, artifactPath);
  if (!carried)
    return fail(carried.error().message());
  std::optional<lathe::TextTokenizer> tokenizer = carried.take();
  if (!tokenizer &&
      (!prompt.empty() || !perplexityFile.empty() || !promptsFile.empty() || !printIds))
    return fail(artifactPath +
                ": compiled without a tokenizer; use --prompt-ids and --print-ids, "
                "or recompile with --tokenizer");

  gen.maxNewTokens = maxTokens >= 0 ? maxTokens : (*artifact)->config().context;
  // BOS and EOS are the tokenizer's ids: without one, every id is just an id.
  gen.stopAtEndOfText = !ignoreEos && tokenizer.has_value();
  if (tokenizer)
    gen.stopTokens = tokenizer->stopTokens();
  if (!promptsFile.empty())
    return runPrompts(**executable, *tokenizer, promptsFile, gen, printIds,
                      *speculateOpt ? &speculative : nullptr, draftFiles);

  auto session = lathe::Session::create(*executable);
  if (!session)
    return fail(session.error().message());
  if (!perplexityFile.empty()) {
    auto text = lathe::readTextFile(perplexityFile);
    if (!text)
      return fail(text.error().message());
    auto result = lathe::perplexity(*session, *tokenizer, *text);
    if (!result)
      return fail(perplexityFile + ": " + result.error().message());
    std::fprintf(stderr, "%lld sequences, %lld predicted tokens, %.1f tokens/s\n",
                 static_cast<long long>(result->sequences),
                 static_cast<long long>(result->predictedTokens),
                 (result->predictedTokens + result->sequences) / result->seconds);
    std::printf("perplexity: %.4f\n", result->perplexity);
    return 0;
  }

  std::vector<int32_t> ids;
  if (!promptIds.empty()) {
    auto parsed = parseIds(promptIds);
    if (!parsed)
      return fail(parsed.error().message());
    ids = parsed.take();
  } else {
    auto encoded = tokenizer->encode(prompt, /*addBos=*/true);
    if (!encoded)
      return fail("--prompt: " + encoded.error().message());
    ids = encoded.take();
  }
  // Refuse a prompt the model cannot run before anything reaches stdout.
  if (lathe::Status s = lathe::validatePrompt((*artifact)->config(), ids); !s)
    return fail(s.error().message());
  // Stream: text as it is decoded, or ids separated by spaces.
  std::optional<lathe::TextTokenizer::Stream> stream;
  if (tokenizer)
    stream.emplace(*tokenizer, ids);
  bool first = true;
  if (!printIds && promptIds.empty())
    std::fputs(prompt.c_str(), stdout);
  auto sink = [&](int32_t token) {
    if (printIds) {
      std::printf(first ? "%d" : " %d", token);
    } else if (stream) {
      std::string piece = stream->next(token);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    }
    std::fflush(stdout);
    first = false;
  };
  std::optional<lathe::speculative::SpeculativeStats> speculated;
  lathe::Expected<lathe::GenerationStats> stats = lathe::Error("no generation ran");
  if (*speculateOpt) {
    auto run = lathe::speculative::generateSpeculative(*session, ids, gen, speculative, sink);
    if (!run)
      return fail(run.error().message());
    speculated = *run;
    stats = run->generation;
    // The drafter's newest text is this prompt and its output.
    const auto newest = speculative.drafter->history().newest();
    const std::vector<std::vector<int32_t>> texts{{newest.begin(), newest.end()}};
    if (lathe::Status s = lathe::speculative::keepDrafter(*speculative.drafter, draftFiles, texts);
        !s)
      return fail(s.error().message());
  } else {
    stats = lathe::generate(*session, ids, gen, sink);
  }
  if (!stats)
    return fail(stats.error().message());
  std::printf("\n");
  std::fflush(stdout); // the text ends before the statistics on a terminal
  if (stats->reachedContextEnd && maxTokens > stats->generatedTokens)
    std::fprintf(stderr, "stopped at the end of the context (%lld tokens)\n",
                 static_cast<long long>((*artifact)->config().context));
  std::fprintf(stderr,
               "prompt: %lld tokens, %.1f tokens/s; generation: %lld tokens, %.1f "
               "tokens/s\n",
               static_cast<long long>(stats->promptTokens),
               stats->promptTokens / std::max(stats->prefillSeconds, 1e-9),
               static_cast<long long>(stats->generatedTokens),
               stats->generatedTokens / std::max(stats->decodeSeconds, 1e-9));
  if (speculated)
    std::fprintf(stderr,
                 "speculative decoding, tree %s: %lld steps, %.2f accepted tokens per step "
                 "(%lld of %lld drafted tokens accepted), %.1f tokens/s; a node cost %.2f of "
                 "a step (%s)\n",
                 speculative.shape.str().c_str(), static_cast<long long>(speculated->steps),
                 speculated->meanAccepted(), static_cast<long long>(speculated->acceptedDrafts),
                 static_cast<long long>(speculated->draftedTokens),
                 stats->generatedTokens / std::max(stats->decodeSeconds, 1e-9),
                 speculated->nodeCost, speculated->nodeCostMeasured ? "measured" : "assumed");
  const int64_t stored[] = {session->position()};
  printKvUse(session->executable(), stored);
  return 0;
}
