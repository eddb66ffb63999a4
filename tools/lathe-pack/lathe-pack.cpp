// lathe-pack: the parameter file of an artifact compiled with
// --external-weights, packed from the checkpoint on the machine that runs
// the model (a GPU host has the safetensors and the CUDA driver, not the
// compiler's MLIR toolchain): every tensor converted to its element type or
// packed into its format as lathe-compile would have, checked against the
// artifact's shapes. Bad input: one line, exit 1.
#include "compiler/Frontend/HFCheckpoint.h"
#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "compiler/Frontend/PackParameters.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/artifact/ParameterFile.h"
#include "tools/CommandLine.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "lathe-pack: %s\n", message.c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"Pack the parameter file of ARTIFACT (compiled with --external-weights) from "
               "CHECKPOINT: a Hugging Face folder (config.json and safetensors) or a "
               "llama2.c checkpoint"};
  std::string artifactPath, checkpointPath, out;
  bool quiet = false;
  app.add_option("ARTIFACT", artifactPath, "the .lathe artifact")->required();
  app.add_option("CHECKPOINT", checkpointPath,
                 "the model's Hugging Face folder or llama2.c checkpoint")
      ->required();
  app.add_option("-o,--output", out,
                 "the parameter file to write (default: ARTIFACT with the extension .params, "
                 "where the runtime looks for it)");
  app.add_flag("-q,--quiet", quiet,
               "no progress or summary line (progress shows only on a terminal)");
  if (std::optional<int> status = lathe::tools::parseCommandLine(app, argc, argv, "lathe-pack"))
    return *status;
  if (out.empty())
    out = lathe::artifact::defaultParameterPath(artifactPath);
  // Packing over an input would destroy it.
  for (const std::string &in : {artifactPath, checkpointPath}) {
    std::error_code same;
    if (std::filesystem::equivalent(in, out, same))
      return fail("-o " + out + " is an input (" + in + "): write the parameter file elsewhere");
  }

  const auto start = std::chrono::steady_clock::now();
  lathe::artifact::LoadOptions description;
  description.descriptionOnly = true;
  auto artifact = lathe::artifact::Artifact::load(artifactPath, description);
  if (!artifact)
    return fail(artifact.error().message());
  std::error_code ec;
  if (!std::filesystem::exists(checkpointPath, ec))
    return fail(checkpointPath + ": no such file or directory");
  auto checkpoint = std::filesystem::is_directory(checkpointPath, ec)
                        ? lathe::frontend::readHFCheckpoint(checkpointPath)
                        : lathe::frontend::readLlama2cCheckpoint(checkpointPath);
  if (!checkpoint)
    return fail(checkpoint.error().message());

  const bool showProgress = !quiet && isatty(STDERR_FILENO);
  auto progress = [&](size_t done, size_t total) {
    if (showProgress)
      std::fprintf(stderr, "\r\033[Kpacking tensor %zu of %zu", done, total);
  };
  lathe::Status status =
      lathe::frontend::packParameters(**artifact, *checkpoint, checkpointPath, out, progress);
  if (showProgress)
    std::fprintf(stderr, "\r\033[K");
  if (!status)
    return fail(status.error().message());
  if (!quiet) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "wrote %s: %zu tensors, %.1f MB, in %.1f s\n", out.c_str(),
                 (*artifact)->tensors().size(),
                 double((*artifact)->externalWeights()->dataSize) / 1e6, seconds);
  }
  return 0;
}
