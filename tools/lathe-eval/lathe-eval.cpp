// lathe-eval: how far quantized builds drift from a reference build. Scores
// every non-empty line of a text file as its own sequence (BOS first, as
// lathe-run --perplexity does) with the reference and with each artifact, and
// prints one row per build: weight format, bits per weight, file size,
// perplexity, and the KL divergence KL(P_ref || P_build) of the next-token
// distributions, mean and max over all predicted positions. Bad input gets
// one line on stderr and exit code 1.
//
// "Weights" below are the linear weights: every tensor a matmul step of the
// cpu plan reads, plus every tensor stored in a packed format. The embedding
// table (tied to the classifier in llama2.c models) is not one of them while
// it stays f32, so an FP32 build reports 32 bits per weight and a quantized
// build the packed size of exactly the tensors its format applies to.
#include "runtime/artifact/Artifact.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
#include "runtime/tokenizer/TextTokenizer.h"
#include "tools/CommandLine.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using lathe::Error;
using lathe::Expected;
using lathe::artifact::Artifact;

int fail(const std::string &message) {
  std::fprintf(stderr, "lathe-eval: %s\n", message.c_str());
  return 1;
}

using Sequence = lathe::TextSequence;

/// The lines lathe::perplexity() scores, tokenized the same way, so that the
/// reference row reproduces lathe-run --perplexity exactly.
lathe::Expected<std::vector<Sequence>> splitLines(std::string_view text,
                                                  const lathe::TextTokenizer &tokenizer) {
  auto tokenized = lathe::tokenizeLines(text, tokenizer);
  if (!tokenized)
    return tokenized.error();
  std::vector<Sequence> sequences = tokenized.take();
  // A lone BOS predicts nothing.
  std::erase_if(sequences, [](const Sequence &s) { return s.ids.size() < 2; });
  return sequences;
}

struct WeightSummary {
  std::string format;   // "bfp4:block=32", "f32", "mixed (3 formats)"
  double bitsPerWeight = 0;
};

WeightSummary summarizeWeights(const Artifact &artifact) {
  std::set<uint32_t> weights;
  if (const lathe::plan::KernelPlan *plan = artifact.schedule("cpu"))
    for (const lathe::plan::Step &step : plan->steps)
      if (const auto *matmul = std::get_if<lathe::plan::MatMulStep>(&step))
        weights.insert(matmul->weight);
  const auto &tensors = artifact.tensors();
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].quant)
      weights.insert(static_cast<uint32_t>(i));

  std::set<std::string> formats;
  uint64_t bits = 0, elements = 0;
  for (uint32_t index : weights) {
    const lathe::plan::TensorInfo &t = tensors[index];
    formats.insert(t.formatName());
    uint64_t count = 1;
    for (int64_t d : t.shape)
      count *= static_cast<uint64_t>(d);
    bits += t.storageBytes() * 8;
    elements += count;
  }
  WeightSummary summary;
  if (formats.empty())
    summary.format = "none";
  else if (formats.size() == 1)
    summary.format = *formats.begin();
  else
    summary.format = fmt::format("mixed ({} formats)", formats.size());
  summary.bitsPerWeight = elements ? double(bits) / double(elements) : NAN;
  return summary;
}

/// Log-softmax of one row of logits.
void logSoftmax(const float *row, int64_t vocab, double *out) {
  const double logZ = lathe::logPartition({row, static_cast<size_t>(vocab)});
  for (int64_t v = 0; v < vocab; ++v)
    out[v] = double(row[v]) - logZ;
}

struct Score {
  double totalNll = 0;
  int64_t predicted = 0;
  double klSum = 0, klMax = 0;
};

/// Runs every sequence once through `artifact`. With `keep` the reference's
/// log-probabilities are stored there, one vocab row per predicted position in
/// sequence order; with `reference` each position's KL(P_ref || P) is
/// measured against that store.
Expected<Score> score(const std::shared_ptr<const Artifact> &artifact,
                      const std::vector<Sequence> &sequences, const std::string &textPath,
                      const std::vector<double> *reference, std::vector<double> *keep,
                      const lathe::SessionOptions &options) {
  const lathe::plan::ModelConfig &config = artifact->config();
  for (const Sequence &s : sequences)
    if (static_cast<int64_t>(s.ids.size()) > config.context)
      return Error(fmt::format("{}: line {} is {} tokens, longer than the context "
                               "of {} ({} tokens)",
                               textPath, s.lineNo, s.ids.size(), artifact->path(),
                               config.context));
  auto session = lathe::Session::create(artifact, options);
  if (!session)
    return session.error();

  const int64_t vocab = config.vocab;
  std::vector<double> logProbs(static_cast<size_t>(vocab));
  Score result;
  size_t refRow = 0;
  // A windowed cache (KIVI int4, int2; int8, bfp8, bfp4 with window=R)
  // quantizes only the tokens decoding has left behind its f32 window: a
  // prefill's attention reads every row in f32. Such builds are scored by
  // decoding, one token a step, so that each position sees the cache as
  // generation would.
  const lathe::formats::KvFormat kv = session->kvCache().layout().format;
  const bool decode = kv.windowed();
  if (decode)
    std::fprintf(stderr, "%s: %s KV cache with an f32 window, scored by decoding one token a "
                         "step\n",
                 artifact->path().c_str(), lathe::formats::kvFormatName(kv).c_str());
  std::vector<float> decoded;
  for (const Sequence &s : sequences) {
    session->reset();
    Expected<std::span<const float>> logits = std::span<const float>();
    if (decode) {
      decoded.clear();
      for (size_t i = 0; i + 1 < s.ids.size() && logits; ++i) {
        logits = session->forward(std::span<const int32_t>(&s.ids[i], 1));
        if (logits)
          decoded.insert(decoded.end(), logits->begin(), logits->end());
      }
      if (logits)
        logits = std::span<const float>(decoded);
    } else {
      logits = session->forward(s.ids, /*allLogits=*/true);
    }
    if (!logits)
      return Error(fmt::format("{}: line {}: {}", artifact->path(), s.lineNo,
                               logits.error().message()));
    for (size_t i = 0; i + 1 < s.ids.size(); ++i, ++refRow) {
      logSoftmax(logits->data() + i * vocab, vocab, logProbs.data());
      result.totalNll -= logProbs[s.ids[i + 1]];
      ++result.predicted;
      if (keep)
        keep->insert(keep->end(), logProbs.begin(), logProbs.end());
      if (reference) {
        const double *p = reference->data() + refRow * vocab;
        double kl = 0;
        for (int64_t v = 0; v < vocab; ++v)
          kl += std::exp(p[v]) * (p[v] - logProbs[v]);
        // Rounding can leave an identical distribution a hair below zero.
        kl = std::max(kl, 0.0);
        result.klSum += kl;
        result.klMax = std::max(result.klMax, kl);
      }
    }
  }
  return result;
}

struct Row {
  std::string build, format;
  double bitsPerWeight = 0, sizeMB = 0, perplexity = 0, klMean = 0, klMax = 0;
};

std::string markdownCell(const std::string &text) {
  std::string out;
  for (char c : text) {
    if (c == '|')
      out += '\\';
    out += c;
  }
  return out;
}

std::string csvField(const std::string &text) {
  if (text.find_first_of(",\"\n") == std::string::npos)
    return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"lathe-eval: perplexity and KL divergence of builds against a reference"};
  std::string referencePath, textPath;
  std::vector<std::string> paths;
  bool csv = false, int8Activations = false, floatActivations = false;
  app.add_option("--reference", referencePath, "reference build, e.g. the FP32 artifact")
      ->required();
  app.add_option("--text", textPath, "score each non-empty line of FILE")->required();
  app.add_flag("--csv", csv, "print CSV instead of a Markdown table");
  auto *int8 = app.add_flag("--int8-activations", int8Activations,
                            "score the builds (not the reference) with int8-rounded matmul "
                            "inputs, as lathe-run --int8-activations runs them");
  auto *fp = app.add_flag("--float-activations", floatActivations,
                          "score the builds with float matmul inputs, as lathe-run "
                          "--float-activations runs them (default: as each build runs by "
                          "default; the reference always runs float)");
  int8->excludes(fp);
  app.add_option("artifacts", paths, "builds to compare with the reference");
  if (auto status = lathe::tools::parseCommandLine(app, argc, argv, "lathe-eval"))
    return *status;
  if (paths.empty())
    return fail("no builds to compare: pass one or more artifacts after --reference REF");

  // Load and check every build before scoring any, so that a bad argument
  // fails at once.
  std::vector<std::shared_ptr<const Artifact>> artifacts;
  auto reference = Artifact::load(referencePath);
  if (!reference)
    return fail(reference.error().message());
  artifacts.push_back(reference.take());
  const Artifact &ref = *artifacts.front();
  std::optional<lathe::TextTokenizer> tokenizer;
  if (const lathe::HFTokenizerSpec *hf = ref.hfTokenizer()) {
    auto tok = lathe::HFTokenizer::create(*hf, referencePath);
    if (!tok)
      return fail(tok.error().message());
    tokenizer.emplace(tok.take());
  } else if (!ref.vocabulary().pieces.empty()) {
    auto tok = lathe::Tokenizer::create(ref.vocabulary());
    if (!tok)
      return fail(referencePath + ": " + tok.error().message());
    tokenizer.emplace(tok.take());
  } else {
    return fail(referencePath + ": compiled without a tokenizer; recompile the "
                                "reference with --tokenizer");
  }
  for (const std::string &path : paths) {
    auto loaded = Artifact::load(path);
    if (!loaded)
      return fail(loaded.error().message());
    const Artifact &a = **loaded;
    if (a.config().vocab != ref.config().vocab)
      return fail(fmt::format("{}: vocabulary of {} tokens, but the reference {} has {}",
                              path, a.config().vocab, referencePath, ref.config().vocab));
    // A build without a tokenizer is scored on the reference's token ids.
    bool hasTokenizer = a.hfTokenizer() || !a.vocabulary().pieces.empty();
    bool sameTokenizer = a.hfTokenizer() && ref.hfTokenizer()
                             ? *a.hfTokenizer() == *ref.hfTokenizer()
                             : !a.hfTokenizer() && !ref.hfTokenizer() &&
                                   a.vocabulary().pieces == ref.vocabulary().pieces;
    if (hasTokenizer && !sameTokenizer)
      return fail(fmt::format("{}: tokenizer differs from the reference {}'s", path,
                              referencePath));
    artifacts.push_back(loaded.take());
  }

  auto text = lathe::readTextFile(textPath);
  if (!text)
    return fail(text.error().message());
  auto lines = splitLines(*text, *tokenizer);
  if (!lines)
    return fail(textPath + ":" + lines.error().message());
  std::vector<Sequence> sequences = lines.take();
  if (sequences.empty())
    return fail(textPath + ": no text to score: every line is empty or a single token");

  std::vector<double> refLogProbs;
  std::vector<Row> rows;
  for (size_t i = 0; i < artifacts.size(); ++i) {
    const Artifact &a = *artifacts[i];
    bool isReference = i == 0;
    lathe::SessionOptions options;
    if (isReference || floatActivations)
      options.int8Activations = false;
    else if (int8Activations)
      options.int8Activations = true;
    auto scored = score(artifacts[i], sequences, textPath,
                        isReference ? nullptr : &refLogProbs,
                        isReference ? &refLogProbs : nullptr, options);
    if (!scored)
      return fail(scored.error().message());
    std::error_code ec;
    uintmax_t bytes = std::filesystem::file_size(a.path(), ec);
    if (ec)
      return fail(a.path() + ": " + ec.message());
    // The parameter file beside an --external-weights build is part of it.
    if (const lathe::artifact::ExternalWeights *external = a.externalWeights()) {
      bytes += std::filesystem::file_size(external->path, ec);
      if (ec)
        return fail(external->path + ": " + ec.message());
    }
    WeightSummary weights = summarizeWeights(a);
    Row row;
    row.build = std::filesystem::path(a.path()).stem().string();
    const lathe::plan::KernelPlan *plan = a.schedule(options.target);
    if (options.int8Activations.value_or(plan && lathe::plan::usesInt8Activations(*plan)))
      row.build += " (int8 activations)";
    row.format = weights.format;
    row.bitsPerWeight = weights.bitsPerWeight;
    row.sizeMB = double(bytes) / 1e6;
    row.perplexity = std::exp(scored->totalNll / double(scored->predicted));
    row.klMean = scored->klSum / double(scored->predicted);
    row.klMax = scored->klMax;
    rows.push_back(row);
    if (isReference)
      std::fprintf(stderr, "%s: %zu sequences, %lld predicted tokens\n", textPath.c_str(),
                   sequences.size(), static_cast<long long>(scored->predicted));
  }

  if (csv) {
    std::printf("build,format,bits_per_weight,size_mb,perplexity,kl_mean,kl_max\n");
    for (const Row &r : rows)
      std::printf("%s,%s,%.4f,%.3f,%.6f,%.6g,%.6g\n", csvField(r.build).c_str(),
                  csvField(r.format).c_str(), r.bitsPerWeight, r.sizeMB, r.perplexity,
                  r.klMean, r.klMax);
  } else {
    std::printf("| build | format | bits/weight | size (MB) | perplexity | KL mean | KL max |\n");
    std::printf("|---|---|--:|--:|--:|--:|--:|\n");
    for (const Row &r : rows)
      std::printf("| %s | %s | %.2f | %.2f | %.4f | %.6f | %.6f |\n",
                  markdownCell(r.build).c_str(), markdownCell(r.format).c_str(),
                  r.bitsPerWeight, r.sizeMB, r.perplexity, r.klMean, r.klMax);
  }
  return 0;
}
