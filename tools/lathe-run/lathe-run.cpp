// lathe-run: run a compiled artifact: generate text from a prompt or score a
// text file's perplexity. Bad input gets one line on stderr and exit code 1.
#include "runtime/artifact/Artifact.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
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

/// --prompts: every non-empty line of `path` is a sequence; all decode in
/// the same steps, and each one's output is printed on its own line, in
/// order, once all are done (a newline inside a text is printed as \n, a
/// carriage return as \r and a backslash as \\, so that line i of the
/// output belongs to prompt i).
int runPrompts(lathe::backend::Executable &executable, const lathe::TextTokenizer &tokenizer,
               const std::string &path, const lathe::GenerationOptions &gen, bool printIds) {
  auto text = lathe::readTextFile(path);
  if (!text)
    return fail(text.error().message());
  std::vector<lathe::TextSequence> lines = lathe::tokenizeLines(*text, tokenizer);
  if (lines.empty())
    return fail(path + ": no prompts: every line is empty");
  std::vector<std::vector<int32_t>> prompts;
  for (const lathe::TextSequence &line : lines) {
    if (lathe::Status s = lathe::validatePrompt(executable.config(), line.ids); !s)
      return fail(path + ":" + std::to_string(line.lineNo) + ": " + s.error().message());
    prompts.push_back(line.ids);
  }
  std::vector<std::vector<int32_t>> outputs(prompts.size());
  auto stats = lathe::generateMany(executable, prompts, gen,
                                   [&](size_t i, int32_t token) { outputs[i].push_back(token); });
  if (!stats)
    return fail(stats.error().message());
  int64_t promptTokens = 0, generated = 0;
  std::vector<int64_t> stored;
  for (size_t i = 0; i < prompts.size(); ++i) {
    promptTokens += (*stats)[i].promptTokens;
    generated += (*stats)[i].generatedTokens;
    // The last token chosen is never run, so never stored.
    stored.push_back((*stats)[i].promptTokens +
                     std::max<int64_t>((*stats)[i].generatedTokens - 1, 0));
    std::string line;
    if (printIds) {
      for (size_t j = 0; j < outputs[i].size(); ++j)
        line += (j ? " " : "") + std::to_string(outputs[i][j]);
    } else {
      line = tokenizer.decodeSequence(prompts[i], outputs[i]);
      // One line per sequence: newlines, carriage returns and backslashes
      // are escaped, so the line reads back unambiguously.
      std::string escaped;
      for (char ch : line)
        escaped += ch == '\n'   ? std::string("\\n")
                   : ch == '\r' ? std::string("\\r")
                   : ch == '\\' ? std::string("\\\\")
                                 : std::string(1, ch);
      line = escaped;
    }
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
  const lathe::GenerationStats &first = stats->front();
  std::fprintf(stderr,
               "%zu sequences; prompt: %lld tokens, %.1f tokens/s; generation: %lld tokens, "
               "%.1f tokens/s\n",
               prompts.size(), static_cast<long long>(promptTokens),
               promptTokens / std::max(first.prefillSeconds, 1e-9),
               static_cast<long long>(generated), generated / std::max(first.decodeSeconds, 1e-9));
  printKvUse(executable, stored);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"lathe-run: run a Lathe artifact"};
  std::string artifactPath, prompt, promptIds, perplexityFile, promptsFile, draftHistory;
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
  speculateOpt->excludes(pplOpt)->excludes(promptsOpt);
  app.add_option("--draft-history", draftHistory,
                 "with --speculate: draft n-grams from the earlier texts in FILE too (one "
                 "per line, token ids separated by spaces, as --print-ids prints them; a "
                 "missing file is none), then append this prompt and its output to it")
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

  auto artifact = lathe::artifact::Artifact::load(artifactPath, sessionFlags.memory());
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
    if (!draftHistory.empty()) {
      auto texts = lathe::speculative::readTextsFile(draftHistory, (*artifact)->config().vocab);
      if (!texts)
        return fail("--draft-history: " + texts.error().message());
      speculative.drafter = std::make_shared<lathe::speculative::TreeDrafter>(
          (*artifact)->config().vocab, speculative.shape, speculative.drafting);
      for (const std::vector<int32_t> &text : *texts)
        speculative.drafter->remember(text);
    }
  }
  const int threads = (*executable)->threads();
  if (sessionFlags.options.threads > threads)
    std::fprintf(stderr, "lathe-run: note: --threads %d is more than the %d cores available; "
                         "using %d\n",
                 sessionFlags.options.threads, threads, threads);

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
    return runPrompts(**executable, *tokenizer, promptsFile, gen, printIds);

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
    ids = tokenizer->encode(prompt, /*addBos=*/true);
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
    if (!draftHistory.empty()) {
      // The drafter's newest text is this prompt and its output.
      const auto newest = speculative.drafter->history().newest();
      if (lathe::Status s = lathe::speculative::appendTextToFile(draftHistory, newest); !s)
        return fail("--draft-history: " + s.error().message());
    }
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
