#include "passes/Quantize/CalibratedLinear.h"

#include "passes/Quantize/WeightData.h"
#include "runtime/formats/RowCodec.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"

#include <cmath>

using namespace mlir;

namespace lathe {

std::vector<float> readF32Attr(Operation *op, StringRef name) {
  auto attr = op->getAttrOfType<DenseElementsAttr>(name);
  if (!attr || !attr.getElementType().isF32())
    return {};
  auto values = attr.getValues<float>();
  return {values.begin(), values.end()};
}

void writeF32Attr(Operation *op, StringRef name, ArrayRef<float> values) {
  auto type = RankedTensorType::get({int64_t(values.size())}, Float32Type::get(op->getContext()));
  op->setAttr(name, DenseElementsAttr::get(type, values));
}

FailureOr<std::vector<CalibratedLinear>> loadCalibratedLinears(ArrayRef<tfm::LinearOp> linears) {
  std::vector<CalibratedLinear> result;
  for (tfm::LinearOp l : linears) {
    auto w = l.getWeight().getDefiningOp<tfm::WeightOp>();
    if (!w)
      return l.emitOpError() << "reads a weight that is not a tfm.weight";
    FailureOr<std::vector<float>> values = readWeightFloats(w);
    if (failed(values))
      return failure();
    auto type = cast<RankedTensorType>(w.getType());
    CalibratedLinear c;
    c.w = std::move(*values);
    c.rows = type.getDimSize(0);
    c.cols = type.getDimSize(1);
    c.rms2.assign(c.cols, 1.0);
    std::vector<float> rms = readF32Attr(l, kCalibRmsAttr);
    std::vector<float> absMax = readF32Attr(l, kCalibAbsMaxAttr);
    if (rms.size() == size_t(c.cols)) {
      for (int64_t k = 0; k < c.cols; ++k)
        c.rms2[k] = double(rms[k]) * rms[k];
      c.rms = std::move(rms);
    }
    if (absMax.size() == size_t(c.cols))
      c.absMax = std::move(absMax);
    result.push_back(std::move(c));
  }
  return result;
}

double calibratedWeightError(const CalibratedLinear &r, const formats::FormatSpec &spec,
                             ArrayRef<int64_t> order, ArrayRef<int> exponents) {
  auto column = [&](int64_t i) { return order.empty() ? i : order[i]; };
  std::vector<float> row(r.cols), back(r.cols);
  std::vector<uint8_t> packed(formats::packedRowBytes(spec, r.cols));
  // Powers of two: multiplying by them is exact where ldexp would be.
  std::vector<float> down(exponents.size());
  std::vector<double> up(exponents.size());
  for (size_t k = 0; k < exponents.size(); ++k) {
    down[k] = std::ldexp(1.0f, -exponents[k]);
    up[k] = std::ldexp(1.0, exponents[k]);
  }
  double err = 0, energy = 0;
  for (int64_t n = 0; n < r.rows; ++n) {
    for (int64_t i = 0; i < r.cols; ++i) {
      float v = r.w[n * r.cols + column(i)];
      row[i] = exponents.empty() ? v : v * down[column(i)];
    }
    if (!formats::quantizeRow(spec, row, packed))
      return INFINITY;
    formats::dequantizeRow(spec, packed, back);
    for (int64_t i = 0; i < r.cols; ++i) {
      int64_t k = column(i);
      double d = double(row[i]) - back[i];
      // Undo the column's scale: the error reaches the output through an
      // input 2^e times larger.
      if (!exponents.empty())
        d *= up[k];
      double v = r.w[n * r.cols + k];
      err += r.rms2[k] * d * d;
      energy += r.rms2[k] * v * v;
    }
  }
  return energy > 0 ? err / energy : 0;
}

double calibratedActivationError(const CalibratedLinear &r, int64_t block,
                                 ArrayRef<int64_t> order, ArrayRef<int> exponents) {
  auto column = [&](int64_t i) { return order.empty() ? i : order[i]; };
  auto shift = [&](int64_t k) { return exponents.empty() ? 0 : exponents[k]; };
  double err = 0, energy = 0;
  for (int64_t begin = 0; begin < r.cols; begin += block) {
    const int64_t end = std::min(r.cols, begin + block);
    double peak = 0;
    for (int64_t i = begin; i < end; ++i)
      peak = std::max(peak, std::ldexp(std::sqrt(r.rms2[column(i)]), shift(column(i))));
    const double step = kActivationBlockPeak * peak / 127;
    for (int64_t n = 0; n < r.rows; ++n)
      for (int64_t i = begin; i < end; ++i) {
        const int64_t k = column(i);
        const double v = r.w[n * r.cols + k];
        err += step * step / 12 * std::ldexp(v * v, -2 * shift(k));
        energy += r.rms2[k] * v * v;
      }
  }
  return energy > 0 ? err / energy : 0;
}

} // namespace lathe
