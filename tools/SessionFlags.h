// The flags that choose how a session runs (--target, --threads, --kernels,
// --no-native-code, --int8-activations, --params, --mmap), shared by lathe-run and
// lathe-bench so that both accept and document them the same way.
#pragma once

#include "runtime/engine/Session.h"

#include <CLI/CLI.hpp>
#include <string>

namespace lathe::tools {

struct SessionFlags {
  SessionOptions options;
  std::string target; // empty: the artifact's (first) target
  std::string kernels = "simd";
  bool noNativeCode = false;
  bool int8Activations = false, floatActivations = false;
  bool mmap = false;
  std::string parameters; // --params; empty: the artifact's default

  void addTo(CLI::App &app) {
    app.add_option("--target", target,
                   "which of the artifact's compiled targets to run: cpu or cuda (default: "
                   "the one it was compiled for)");
    app.add_option("--threads", options.threads, "kernel threads (0: every core)")
        ->capture_default_str();
    app.add_option("--kernels", kernels,
                   "simd (default) or reference (scalar, float64 sums, 1 thread)")
        ->check(CLI::IsMember({"simd", "reference"}));
    app.add_flag("--no-native-code", noNativeCode,
                 "interpret the kernel plan instead of running the model's generated code");
    auto *int8 = app.add_flag("--int8-activations", int8Activations,
                              "round matmul inputs to int8 and use integer dot products for "
                              "INT8/INT4/BFP8/BFP4/MXINT8/MXFP4 weights (faster; not the "
                              "reference numerics); the default of artifacts compiled with "
                              "--activations=int8, as quantized builds are by default");
    auto *fp = app.add_flag("--float-activations", floatActivations,
                            "keep matmul inputs in float (the reference numerics) even "
                            "where the artifact chose int8");
    int8->excludes(fp);
    app.add_option("--params", parameters,
                   "the parameter file of an artifact compiled with --external-weights "
                   "(default: the artifact's name with the extension .params, beside it)");
    app.add_flag("--mmap", mmap,
                 "map the artifact file instead of reading it into huge-page memory "
                 "(shares the pages between processes; decoding may be slower)");
  }

  /// How the artifact should be loaded.
  FileMemory memory() const { return mmap ? FileMemory::Mapped : FileMemory::HugePages; }
  artifact::LoadOptions loadOptions() const {
    artifact::LoadOptions o;
    o.memory = memory();
    o.parameters = parameters;
    return o;
  }

  /// The options the parsed flags ask for, running `artifact`.
  SessionOptions resolve(const artifact::Artifact &artifact) const {
    SessionOptions o = options;
    o.target = !target.empty()                ? target
               : artifact.schedules().empty() ? std::string("cpu")
                                              : artifact.schedules().front().target;
    o.kernels = kernels == "reference" ? KernelPath::Reference : KernelPath::Fast;
    o.nativeCode = !noNativeCode;
    if (int8Activations || floatActivations)
      o.int8Activations = int8Activations;
    return o;
  }
};

} // namespace lathe::tools
