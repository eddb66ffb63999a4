// The bytes a tfm.weight takes in the artifact (its format's rows, scales
// included), as the serializer stores it: lathe-group-layers budgets
// groups by it, lathe-hls-schedule sizes the weights' memory interface.
#pragma once

#include "dialects/Transformer/TransformerDialect.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/plan/KernelPlan.h"

#include "mlir/IR/BuiltinTypes.h"

namespace lathe {

inline uint64_t weightBytes(tfm::WeightOp w) {
  auto type = mlir::cast<mlir::RankedTensorType>(w.getResult().getType());
  plan::TensorInfo t;
  t.shape.assign(type.getShape().begin(), type.getShape().end());
  mlir::Type element = type.getElementType();
  t.type = element.isF32() ? ElementType::F32 : element.isF16() ? ElementType::F16
                                                                 : ElementType::BF16;
  if (auto quantized = mlir::dyn_cast<tfm::QuantizedTypeInterface>(element))
    if (Expected<formats::FormatSpec> spec = formats::parseFormatSpec(quantized.getFormatName()))
      t.quant = *spec;
  return t.storageBytes();
}

} // namespace lathe
