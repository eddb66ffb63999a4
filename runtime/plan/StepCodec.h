// The one generic path between a plan step and its stored form: every step
// flattens to its kind name, its integer fields (buffer and tensor indices,
// counts, enums; a list as its length then its items) and its float
// fields, in the order of its kFields (runtime/plan/KernelPlan.h). The
// artifact stores steps so, the loader rebuilds them so, the plan hash
// covers them so, and the compiler serializes plan IR into them so
// (codegen/KernelPlan): adding a step kind touches none of these.
#pragma once

#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::plan {

struct FlatStep {
  std::string kind;
  std::vector<int64_t> ints;
  std::vector<float> floats;
};

FlatStep flatten(const Step &step);

/// Rebuilds a step; fails on an unknown kind, too few or too many values,
/// or a value its field cannot hold (an index past 32 bits, an unknown enum
/// value).
Expected<Step> unflatten(std::string_view kind, std::span<const int64_t> ints,
                         std::span<const float> floats);

/// The fields of the step kind named `kind` (e.g. "matmul"), or an empty
/// span when there is none.
std::span<const FieldInfo> stepFields(std::string_view kind);

} // namespace lathe::plan
