// Builds a model's generated CUDA code (codegen/CUDA/EmitCudaModel.h) with
// nvcc into a fatbin holding machine code for each requested architecture
// and PTX for the first, at lathe-compile time. nvcc is looked for in
// $CUDA_HOME/bin when CUDA_HOME is set, else /usr/local/cuda/bin, else PATH.
#pragma once

#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <string>
#include <vector>

namespace lathe::codegen {

/// The architectures of `--target=cuda[:ARCH,...]` ("cuda" alone: sm_90a),
/// each "sm_" and a compute capability (optionally with "a"), or an error
/// naming the bad part. `target` starts with "cuda".
Expected<std::vector<std::string>> parseCudaTarget(const std::string &target);

/// Compiles `source` for `archs`. Fails with one line saying that nvcc was
/// not found (and where it looked), or naming nvcc's first error.
Expected<plan::DeviceCode> buildCudaCode(const std::string &source,
                                         const std::vector<std::string> &archs,
                                         uint64_t planHash);

} // namespace lathe::codegen
