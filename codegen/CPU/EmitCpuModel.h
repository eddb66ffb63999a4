// Emits the C++ source of one model's CPU forward step from its kernel plan
// (see runtime/backends/cpu/native/CpuModelAbi.h for the contract with the runtime).
#pragma once

#include "codegen/KernelPlan/BuildKernelPlan.h"

#include <string>

namespace lathe::codegen {

/// The generated source; on failure `error` says why (e.g. a packed gain).
mlir::FailureOr<std::string> emitCpuModel(const LoweredModel &model, std::string *error);

} // namespace lathe::codegen
