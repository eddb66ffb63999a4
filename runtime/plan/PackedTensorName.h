// The name of a packed copy of a weight: where the quantize passes pack a
// weight that a float reader still needs (a tied embedding table packed for
// the classifier), the packed copy is named `base.FORMAT` beside the float
// one. One definition for the passes that name it and for lathe-pack, which
// finds the checkpoint tensor an artifact's tensor came from.
#pragma once

#include "runtime/formats/FormatSpec.h"
#include "runtime/plan/KernelPlan.h"

#include <string>

namespace lathe::plan {

inline std::string packedCopyName(const std::string &base, const formats::FormatSpec &spec) {
  return base + "." + formats::formatName(spec);
}

/// The weight `tensor` was made from: its name less a packed copy's suffix.
inline std::string sourceTensorName(const TensorInfo &tensor) {
  if (tensor.quant) {
    const std::string suffix = "." + formats::formatName(*tensor.quant);
    if (tensor.name.size() > suffix.size() && tensor.name.ends_with(suffix))
      return tensor.name.substr(0, tensor.name.size() - suffix.size());
  }
  return tensor.name;
}

} // namespace lathe::plan
