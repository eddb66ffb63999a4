// The CUDA target's host schedule: the host side of one step of a model's
// generated GPU code, lowered from its launches (EmitCudaModel.h) to MLIR's
// EmitC and printed as C++, one call per launch with that launch's
// constants as literals, which picks its kernel and grid for the step's
// tokens (runtime/backends/cuda/schedule/CudaScheduleAbi.h). lathe-compile
// builds it with the system C++ compiler into a shared object that the
// artifact holds beside the GPU code, in the schedule's native code.
#pragma once

#include "codegen/CUDA/EmitCudaModel.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <string>

namespace lathe::codegen {

/// The C++ source of the host schedule of `code`, generated from `plan`.
Expected<std::string> emitCudaSchedule(const plan::KernelPlan &plan, const CudaModelCode &code);

/// Builds the schedule's source into a shared object for any x86-64 (or
/// this host's) CPU. Fails with one line, as buildNativeCode does.
Expected<plan::NativeCode> buildCudaSchedule(const std::string &source, uint64_t planHash);

} // namespace lathe::codegen
