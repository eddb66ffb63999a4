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

/// LATHE_CUDA_LAYOUT_INT_LANES for rows of whole spans (latheLanesFit) of
/// symmetric INT8/INT4 groups and of blocks of codes under a power of two,
/// MXINT8, BFP with 8- or 4-bit mantissas and MXFP4 (a value is its code
/// times 2^(e - 127 - f) for the block's exponent code e: groups whose
/// float32 scale is that power); LATHE_CUDA_LAYOUT_FP6_LANES for FP6 4+2
/// rows of whole spans (latheFp6Fit); else LATHE_CUDA_LAYOUT_AS_STORED.
int gpuWeightLayout(const plan::TensorInfo &info);

/// The group of an FP6 4+2 tensor's rows (a per-channel row is one group:
/// formats::rowBlockValues), as Fp6Lanes<G> takes it.
int fp6LaneGroup(const plan::TensorInfo &info);

/// The bits of the tensor's codes in the lane layout (8 or 4).
int laneBits(const plan::TensorInfo &info);
/// Whether those codes are MXFP4's E2M1 values (IntLanes' E2M1; the scale
/// then 2^(e - 128)) rather than two's complement integers.
bool laneCodesAreE2M1(const plan::TensorInfo &info);

/// Bytes of one row on the GPU: the lane layout's (MXINT8 and BFP rows grow
/// by 3 bytes a block, the exponent widened to a float32 scale) or the
/// artifact's.
int64_t gpuRowBytes(const plan::TensorInfo &info);

/// Bytes of a tensor of `storedBytes` in the artifact on the GPU.
size_t gpuTensorBytes(const plan::TensorInfo &info, size_t storedBytes);

/// The tensor's rows (`in`, the artifact's layout) rearranged into
/// LATHE_CUDA_LAYOUT_INT_LANES (`out`: rows of gpuRowBytes). The tensor
/// must take it (gpuWeightLayout).
void toIntLanes(const plan::TensorInfo &info, std::span<const uint8_t> in,
                std::span<uint8_t> out);
/// The same into LATHE_CUDA_LAYOUT_FP6_LANES.
void toFp6Lanes(const plan::TensorInfo &info, std::span<const uint8_t> in,
                std::span<uint8_t> out);
/// The tensor's bytes in the layout gpuWeightLayout chooses (out:
/// gpuTensorBytes(info, in.size()) bytes).
void toGpuLayout(const plan::TensorInfo &info, std::span<const uint8_t> in,
                 std::span<uint8_t> out);

} // namespace lathe::cuda
