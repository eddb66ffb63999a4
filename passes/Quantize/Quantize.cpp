//===- Quantize.cpp - pack tfm.linear weights into a number format --------===//
#include "passes/Passes.h"
#include "passes/Quantize/WeightData.h"

#include "runtime/formats/RowCodec.h"

#include "llvm/ADT/DenseMap.h"

namespace lathe {
#define GEN_PASS_DEF_QUANTIZE
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

struct QuantizePass : impl::QuantizeBase<QuantizePass> {
  using QuantizeBase::QuantizeBase;

  void runOnOperation() override {
    Expected<formats::FormatSpec> spec = formats::parseFormatSpec(format);
    if (!spec) {
      getOperation().emitError() << "lathe-quantize: " << spec.error().message();
      return signalPassFailure();
    }
    // One packed copy per weight, shared by every linear that reads it.
    llvm::DenseMap<Operation *, Value> packed;
    WalkResult result = getOperation().walk([&](tfm::LinearOp linear) {
      auto weight = linear.getWeight().getDefiningOp<tfm::WeightOp>();
      if (!weight)
        return WalkResult::advance(); // computed weights stay as they are
      if (weightFormat(cast<RankedTensorType>(weight.getType()).getElementType()))
        return WalkResult::advance(); // already packed
      Value &replacement = packed[weight];
      if (!replacement) {
        FailureOr<Value> q = pack(weight, *spec);
        if (failed(q))
          return WalkResult::interrupt();
        replacement = *q;
      }
      linear.getWeightMutable().assign(replacement);
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();
    for (auto &[op, value] : packed)
      if (op->use_empty())
        op->erase();
  }

  FailureOr<Value> pack(tfm::WeightOp weight, const formats::FormatSpec &spec) {
    auto type = cast<RankedTensorType>(weight.getType());
    FailureOr<std::vector<float>> values = readWeightFloats(weight);
    if (failed(values))
      return failure();
    int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
    size_t rowBytes = formats::packedRowBytes(spec, cols);
    std::vector<uint8_t> bytes(rowBytes * rows);
    for (int64_t r = 0; r < rows; ++r) {
      Status s = formats::quantizeRow(spec, {values->data() + r * cols, size_t(cols)},
                                      {bytes.data() + r * rowBytes, rowBytes});
      if (!s)
        return weight.emitOpError() << "cannot be quantized to "
                                    << formats::formatName(spec) << ": row " << r
                                    << ": " << s.error().message();
    }
    OpBuilder builder(weight);
    // Keep the name when every user is a linear (the float weight goes away);
    // otherwise the float copy stays for its other users under its own name.
    bool allLinear = llvm::all_of(weight->getUsers(),
                                  [](Operation *u) { return isa<tfm::LinearOp>(u); });
    std::string name = weight.getSymName().str();
    if (!allLinear)
      name += "." + formats::formatName(spec);
    return createPackedWeight(builder, weight.getLoc(), name, spec, rows, cols, bytes)
        .getResult();
  }
};

} // namespace
} // namespace lathe
