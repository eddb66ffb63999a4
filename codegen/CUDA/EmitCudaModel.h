// The CUDA target's per-model code: one __global__ function per kernel
// launch of the plan, each instantiating a template of
// runtime/backends/cuda/kernels/LatheCudaKernels.cuh with the step's shapes,
// weight formats and buffer indices as constants, plus the launch table the
// runtime reads from the module (its kernels by launch, kind of grid,
// blocks, shared memory) and the plan hash and ABI version it checks. The
// host side of each step, which of a launch's kernels runs on what grid, is
// the schedule generated from the same launches (EmitCudaSchedule.h).
#pragma once

#include "codegen/Support/BuildTools.h"
#include "runtime/backends/cuda/kernels/CudaFrame.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <span>
#include <string>
#include <vector>

namespace lathe::codegen {

/// A model's CUDA code: the device source and its launches, in order.
struct CudaModelCode {
  std::string device;
  std::vector<LatheCudaLaunch> launches;
  /// Per launch: a wgmma product's stages of k (its input's width in
  /// LATHE_CUDA_TMA_BOX_K values), the most splits of its k; 0 elsewhere.
  std::vector<int32_t> kStages;
};

/// The CUDA code of `plan` over `tensors` (the artifact's, by index).
/// Fails with one line naming the first step or format the CUDA kernels do
/// not cover yet.
Expected<CudaModelCode> emitCudaModel(const plan::KernelPlan &plan,
                                      const std::vector<plan::TensorInfo> &tensors);

/// The headers the generated source includes, written next to it before
/// nvcc runs.
std::span<const HeaderText> cudaCodeHeaders();

/// The widest product input that takes int8 activations on the cuda target
/// (its row and codes are held in shared memory): lathe-compile keeps wider
/// products in float (lathe-plan-activations{max-int8-width}).
int64_t cudaMaxInt8Width();
/// The widest product input that takes bf16 activations on the cuda target
/// (its rounded row is held in shared memory): lathe-compile keeps wider
/// products in float (lathe-plan-activations{max-bf16-width}).
int64_t cudaMaxBf16Width();

} // namespace lathe::codegen
