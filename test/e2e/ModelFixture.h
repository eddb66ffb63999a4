// Shared setup of the end-to-end tests: locate stories15M and the reference
// outputs, and compile a model into an artifact in a temporary folder.
#pragma once

#include "compiler/Driver/Compiler.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"

#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <unistd.h>

namespace lathe::test {

inline std::string modelDir() {
  const char *dir = std::getenv("LATHE_MODEL_DIR");
  return dir ? dir : "";
}

inline bool haveModel() {
  return !modelDir().empty() &&
         std::filesystem::exists(modelDir() + "/stories15M.bin") &&
         std::filesystem::exists(modelDir() + "/tokenizer.bin");
}

inline nlohmann::json loadReference() {
  std::ifstream in(std::string(LATHE_TEST_DATA_DIR) + "/stories15M_reference.json");
  return nlohmann::json::parse(in);
}

/// This test process's scratch folder, removed when the process exits: an
/// end-to-end test binary writes a few hundred megabytes of artifacts
/// there, and folders left behind by every run filled the disk.
inline const std::filesystem::path &scratchDir() {
  struct Scratch {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("lathe-test-" + std::to_string(::getpid()));
    Scratch() { std::filesystem::create_directories(path); }
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Scratch scratch;
  return scratch.path;
}

inline std::string tempPath(const std::string &name) { return (scratchDir() / name).string(); }

/// ||got - want|| / ||want||.
inline double relativeL2(std::span<const float> got, std::span<const float> want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

/// Compiles with `options` (its output set to a temporary `name`.lathe) and
/// loads the artifact; fails the test on error.
inline std::shared_ptr<const artifact::Artifact> compileAndLoad(compiler::CompileOptions options,
                                                                const std::string &name) {
  options.output = tempPath(name + ".lathe");
  std::string ignored;
  llvm::raw_string_ostream out(ignored);
  Status status = compiler::compile(options, out);
  EXPECT_TRUE(status) << status.error().message();
  if (!status)
    return nullptr;
  auto artifact = artifact::Artifact::load(options.output);
  EXPECT_TRUE(artifact) << artifact.error().message();
  return artifact ? *artifact : nullptr;
}

/// Compiles `input` for the CPU with stories15M's tokenizer and loads the
/// artifact; fails the test on error.
inline std::shared_ptr<const artifact::Artifact>
compileAndLoad(const std::string &input, const std::string &name,
               const std::string &quant = "none", const std::string &kv = "f32") {
  compiler::CompileOptions options;
  options.input = input;
  options.quant = quant;
  options.kv = kv;
  options.tokenizer = modelDir() + "/tokenizer.bin";
  return compileAndLoad(options, name);
}

/// `a` loaded for the CPU on 2 threads; null (and the test failed) if it
/// cannot load.
inline std::shared_ptr<backend::Executable>
loadOnTwoThreads(std::shared_ptr<const artifact::Artifact> a) {
  SessionOptions options;
  options.threads = 2;
  auto e = backend::load(std::move(a), options);
  EXPECT_TRUE(e) << e.error().message();
  return e ? *e : nullptr;
}

/// The n greedy ids `source` (an artifact, or an executable already
/// loaded) generates after `prompt` in a session of its own, past
/// end-of-text; fails the test (and returns what it got) on error.
template <class Source>
std::vector<int32_t> greedyIds(Source source, const std::vector<int32_t> &prompt, int64_t n) {
  std::vector<int32_t> out;
  auto session = Session::create(std::move(source));
  EXPECT_TRUE(session) << session.error().message();
  if (!session)
    return out;
  GenerationOptions options;
  options.maxNewTokens = n;
  options.stopAtEndOfText = false;
  auto stats = generate(*session, prompt, options, [&](int32_t t) { out.push_back(t); });
  EXPECT_TRUE(stats) << stats.error().message();
  return out;
}

} // namespace lathe::test
