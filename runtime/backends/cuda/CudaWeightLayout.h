// The layouts the CUDA target keeps weights in on the GPU
// (kernels/CudaWeightLayouts.h has their definition, shared with the
// device code): which one a tensor takes, decided by the code generator
// (codegen/CUDA/EmitCudaModel.cpp) and recorded in the module's
// lathe_cuda_weight_layouts table, and the rearrangement the executable
// applies to the artifact's bytes as it copies them to the GPU.
#pragma once

#include "runtime/plan/KernelPlan.h"

#include <cstdint>
#include <span>

namespace lathe::cuda {

/// LATHE_CUDA_LAYOUT_INT_LANES for symmetric INT8/INT4 groups whose rows are
/// whole spans (latheLanesFit), else LATHE_CUDA_LAYOUT_AS_STORED.
int gpuWeightLayout(const plan::TensorInfo &info);

/// The tensor's rows (`in`, the artifact's layout) rearranged into
/// LATHE_CUDA_LAYOUT_INT_LANES (`out`, as many bytes). The tensor must take
/// it (gpuWeightLayout).
void toIntLanes(const plan::TensorInfo &info, std::span<const uint8_t> in,
                std::span<uint8_t> out);

} // namespace lathe::cuda
