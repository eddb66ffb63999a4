// Builds a model's generated host code (the CPU target's step, the CUDA
// target's host schedule) into a shared object with the system C++ compiler
// ($CXX, else c++, g++ or clang++ on PATH), at lathe-compile time.
#pragma once

#include "codegen/Support/BuildTools.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <span>
#include <string>

namespace lathe::codegen {

/// The -march level generated code is built for on this host, and that the
/// runtime checks before loading it: "x86-64-v3" (AVX2, FMA, BMI2) on
/// x86-64, "generic" elsewhere.
std::string nativeIsaForHost();

/// How to build one kind of generated host code.
struct NativeBuildSpec {
  std::string target;   // the option that asked for it, for messages: "--target=cpu"
  std::string what;     // "the model's CPU code"
  std::span<const HeaderText> headers; // what the source includes, written beside it
  uint32_t abiVersion;  // recorded in the result
  bool hostIsa;         // built for nativeIsaForHost(), else for any CPU ("generic")
};

/// Compiles `source` into a shared object as `spec` says. Fails with one
/// line naming the compiler and its first error, or saying that no
/// compiler was found.
Expected<plan::NativeCode> buildSharedObject(const std::string &source, uint64_t planHash,
                                             const NativeBuildSpec &spec);

/// The CPU target's code (EmitCpuModel.h), for this host's ISA level.
Expected<plan::NativeCode> buildNativeCode(const std::string &source, uint64_t planHash);

} // namespace lathe::codegen
