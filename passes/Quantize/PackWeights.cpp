#include "passes/Quantize/PackWeights.h"
#include "runtime/plan/PackedTensorName.h"

#include "passes/Quantize/WeightData.h"
#include "runtime/formats/RowCodec.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

#include <cmath>

using namespace mlir;

namespace lathe {

FailureOr<std::vector<LinearWeight>> collectLinearWeights(ModuleOp module,
                                                         bool classifiers, bool values) {
  llvm::MapVector<Operation *, LinearWeight> weights;
  module.walk([&](tfm::LinearOp linear) {
    auto w = linear.getWeight().getDefiningOp<tfm::WeightOp>();
    if (!w || weightFormat(cast<RankedTensorType>(w.getType()).getElementType()))
      return; // computed or already packed weights stay as they are
    LinearWeight &entry = weights[w];
    entry.op = w;
    entry.readers.push_back(linear);
  });
  if (classifiers)
    module.walk([&](tfm::LogitsOp logits) {
      auto w = logits.getClassifier().getDefiningOp<tfm::WeightOp>();
      if (!w || weightFormat(cast<RankedTensorType>(w.getType()).getElementType()))
        return;
      LinearWeight &entry = weights[w];
      entry.op = w;
      entry.classifier = true;
    });
  std::vector<LinearWeight> result;
  for (auto &[op, w] : weights) {
    auto type = cast<RankedTensorType>(w.op.getType());
    w.rows = type.getDimSize(0);
    w.cols = type.getDimSize(1);
    if (values) {
      FailureOr<std::vector<float>> read = readWeightFloats(w.op);
      if (failed(read))
        return failure();
      w.values = std::move(*read);
    }
    w.rms2.assign(w.cols, 1.0);
    // The first calibrated reader speaks for the channels' magnitudes.
    for (tfm::LinearOp reader : w.readers) {
      auto rms = reader->getAttrOfType<DenseElementsAttr>("tfm.calib_rms");
      if (!rms || rms.getNumElements() != w.cols)
        continue;
      int64_t k = 0;
      for (float r : rms.getValues<float>())
        w.rms2[k++] = double(r) * r;
      w.calibrated = true;
      break;
    }
    result.push_back(std::move(w));
  }
  return result;
}

FailureOr<PackedMatrix> packMatrix(const LinearWeight &w, const formats::FormatSpec &spec) {
  PackedMatrix p;
  size_t rowBytes = formats::packedRowBytes(spec, w.cols);
  p.bytes.resize(rowBytes * w.rows);
  p.bitsPerWeight = 8.0 * double(p.bytes.size()) / double(w.rows * w.cols);
  std::vector<float> back(w.cols);
  double err = 0, energy = 0, werr = 0, wenergy = 0;
  for (int64_t r = 0; r < w.rows; ++r) {
    std::span<const float> row(w.values.data() + r * w.cols, size_t(w.cols));
    std::span<uint8_t> out(p.bytes.data() + r * rowBytes, rowBytes);
    if (Status s = formats::quantizeRow(spec, row, out); !s)
      return tfm::WeightOp(w.op).emitOpError() << "cannot be quantized to " << formats::formatName(spec)
                                << ": row " << r << ": " << s.error().message();
    formats::dequantizeRow(spec, out, back);
    for (int64_t k = 0; k < w.cols; ++k) {
      double d = double(row[k]) - back[k], v = row[k];
      err += d * d;
      energy += v * v;
      werr += w.rms2[k] * d * d;
      wenergy += w.rms2[k] * v * v;
    }
  }
  p.error = energy > 0 ? std::sqrt(err / energy) : 0;
  p.outputError = wenergy > 0 ? std::sqrt(werr / wenergy) : 0;
  return p;
}

void replaceWithPacked(LinearWeight &w, const formats::FormatSpec &spec,
                       const PackedMatrix *p) {
  OpBuilder builder(w.op);
  // Keep the name when the packed weight replaces every use (the float one
  // goes away); otherwise the float copy stays for its other users under its
  // own name. A packed classifier also serves the embedding lookups.
  bool allLinear = llvm::all_of(w.op->getUsers(), [&](Operation *u) {
    return isa<tfm::LinearOp>(u) ||
           (w.classifier && isa<tfm::LogitsOp, tfm::EmbeddingOp>(u));
  });
  std::string name = w.op.getSymName().str();
  if (!allLinear)
    name = plan::packedCopyName(name, spec);
  tfm::WeightOp packed =
      p ? createPackedWeight(builder, w.op.getLoc(), name, spec, w.rows, w.cols, p->bytes)
        : createUnfilledPackedWeight(builder, w.op.getLoc(), name, spec, w.rows, w.cols);
  if (p) {
    packed->setAttr(kQuantErrorAttr, builder.getF32FloatAttr(float(p->error)));
    if (w.calibrated)
      packed->setAttr(kQuantOutputErrorAttr, builder.getF32FloatAttr(float(p->outputError)));
  }
  for (tfm::LinearOp reader : w.readers)
    reader.getWeightMutable().assign(packed.getResult());
  if (w.classifier)
    w.op.getResult().replaceUsesWithIf(packed.getResult(), [](OpOperand &use) {
      return isa<tfm::LogitsOp, tfm::EmbeddingOp>(use.getOwner());
    });
  if (w.op->use_empty())
    w.op->erase();
  w.op = packed;
}

} // namespace lathe
