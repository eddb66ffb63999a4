// Builds a model's generated CPU code into a shared object with the system
// C++ compiler ($CXX, else c++, g++ or clang++ on PATH), at lathe-compile time.
#pragma once

#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <string>

namespace lathe::codegen {

/// The -march level generated code is built for on this host, and that the
/// runtime checks before loading it: "x86-64-v3" (AVX2, FMA, BMI2) on
/// x86-64, "generic" elsewhere.
std::string nativeIsaForHost();

/// Compiles `source` into a shared object. Fails with one line naming the
/// compiler and its first error, or saying that no compiler was found.
Expected<plan::NativeCode> buildNativeCode(const std::string &source, uint64_t planHash);

} // namespace lathe::codegen
