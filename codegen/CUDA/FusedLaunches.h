// Which steps of a kernel plan the CUDA target runs in one kernel launch.
// A decode step is a chain of short kernels; every launch costs a few
// microseconds of a step that should take well under a millisecond, so
// the emitter folds the element-wise steps that allow it into a neighbour:
//   - an rms_norm (or the norm half of an add_rms_norm whose add went into
//     the product before it) into the product after it, which each block
//     normalizes its input rows for in shared memory;
//   - an add_rms_norm's add into the matmul before it, which writes
//     `sum = other + W x` instead of its output;
//   - a silu_mul into the two-weight matmuls before it (gate and up), whose
//     warps compute the gate's and the up's row n and write silu(g) * u;
//   - the two rope steps before an attention step and the attention's
//     KV store into one kernel, and for a single token into the q/k/v
//     product before them.
// Each fusion needs the intermediate buffer to be dead afterwards and no
// block of the fused launch to write what another block still reads; the
// steps stay separate otherwise. The results are the same floats as the
// separate kernels compute.
#pragma once

#include "runtime/plan/KernelPlan.h"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace lathe::codegen {

/// A norm a product runs as its input prologue: RMSNorm(input) * gain.
struct FusedNorm {
  size_t step;    // the rms_norm, or the add_rms_norm whose add went before
  uint32_t input; // the rms_norm's input, or the add_rms_norm's sum
  uint32_t gain;
  float epsilon;
};

/// An add_rms_norm's add a matmul performs: it writes `sum = other + W x`.
struct FusedAdd {
  size_t step; // the add_rms_norm
  uint32_t other, sum;
};

struct FusedLaunches {
  /// Per step: the step is run inside another step's launch.
  std::vector<bool> absorbed;
  /// Per product step: the norm that is its input prologue.
  std::vector<std::optional<FusedNorm>> normOf;
  /// Per matmul step: the add after it that it performs.
  std::vector<std::optional<FusedAdd>> residualOf;
  /// Per add_rms_norm step whose add a matmul performs: only its norm
  /// remains (of `sum`).
  std::vector<bool> addDone;
  /// Per matmuls step of two weights: the silu_mul step it performs; it
  /// then writes that step's output.
  std::vector<std::optional<size_t>> gatedOf;
  /// Per attention step: the first of its two rope steps (queries, then
  /// keys), run with its KV store.
  std::vector<std::optional<size_t>> ropeOf;
  /// Per q/k/v matmuls step right before such a rope pair: the attention
  /// step. For a single token the product rotates its q and k rows and
  /// stores the key and value rows itself (the rope launch is then left
  /// out); it never writes the ropes' inputs then, so those must be
  /// dead after the ropes (or be rotated in place).
  std::vector<std::optional<size_t>> ropeProductOf;
};

/// The fusions for `plan`, whose weights are `tensors` (norm gains are
/// checked against them). `normRowsFit(width)` says whether a product can
/// normalize rows of that width in shared memory.
FusedLaunches fuseLaunches(const plan::KernelPlan &plan, std::span<const plan::TensorInfo> tensors,
                           bool (*normRowsFit)(uint64_t width));

} // namespace lathe::codegen
