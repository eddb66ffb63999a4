#include "passes/Quantize/WeightData.h"

#include "runtime/formats/ElementType.h"
#include "runtime/formats/RowCodec.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sys/mman.h>

using namespace mlir;

namespace lathe {

FailureOr<std::vector<float>> readWeightFloats(tfm::WeightOp weight) {
  auto type = cast<RankedTensorType>(weight.getResult().getType());
  Type et = type.getElementType();
  if (!et.isF32() && !et.isF16() && !et.isBF16())
    return weight.emitOpError() << "holds packed " << et << " data, not floats";
  FailureOr<std::vector<uint8_t>> raw = readWeightBytes(weight);
  if (failed(raw))
    return failure();
  const size_t n = static_cast<size_t>(type.getNumElements());
  std::vector<float> values(n);
  // The element type decided once, not per value (a 1B model's weights
  // are a billion of them).
  if (et.isF32()) {
    std::memcpy(values.data(), raw->data(), 4 * n);
    return values;
  }
  const bool f16 = et.isF16();
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, raw->data() + 2 * i, 2);
    values[i] = f16 ? f16ToFloat(h) : bf16ToFloat(h);
  }
  return values;
}

FailureOr<std::vector<uint8_t>> readWeightBytes(tfm::WeightOp weight) {
  auto type = cast<RankedTensorType>(weight.getResult().getType());
  const std::optional<formats::FormatSpec> spec = weightFormat(type.getElementType());
  Type et = type.getElementType();
  size_t bytes = 0;
  if (spec) {
    const int64_t rows = type.getRank() > 1 ? type.getDimSize(0) : 1;
    bytes = size_t(rows) * formats::packedRowBytes(*spec, type.getShape().back());
  } else if (et.isF32() || et.isF16() || et.isBF16()) {
    bytes = size_t(type.getNumElements()) * (et.isF32() ? 4 : 2);
  } else {
    return weight.emitOpError() << "holds " << et << " values, neither packed nor float";
  }
  std::vector<uint8_t> raw(bytes);
  if (auto res = dyn_cast<DenseResourceElementsAttr>(weight.getValue())) {
    AsmResourceBlob *blob = res.getRawHandle().getBlob();
    if (!blob || blob->getData().size() != raw.size())
      return weight.emitOpError() << "has no data of the expected size";
    std::memcpy(raw.data(), blob->getData().data(), raw.size());
  } else if (auto dense = dyn_cast<DenseElementsAttr>(weight.getValue())) {
    ArrayRef<char> data = dense.getRawData();
    if (dense.isSplat() ? data.empty() || raw.size() % data.size() != 0
                        : data.size() != raw.size())
      return weight.emitOpError() << "has no data of the expected size";
    for (size_t at = 0; at < raw.size(); at += data.size()) // a splat's one element, repeated
      std::memcpy(raw.data() + at, data.data(), data.size());
  } else {
    return weight.emitOpError() << "expects a dense or dense_resource value";
  }
  return raw;
}

FailureOr<std::vector<float>> readWeightValues(tfm::WeightOp weight) {
  auto type = cast<RankedTensorType>(weight.getResult().getType());
  const std::optional<formats::FormatSpec> spec = weightFormat(type.getElementType());
  if (!spec)
    return readWeightFloats(weight);
  FailureOr<std::vector<uint8_t>> bytes = readWeightBytes(weight);
  if (failed(bytes))
    return failure();
  const int64_t cols = type.getShape().back(), rows = type.getNumElements() / cols;
  const size_t rowBytes = formats::packedRowBytes(*spec, cols);
  std::vector<float> values(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    formats::dequantizeRow(*spec, {bytes->data() + r * rowBytes, rowBytes},
                           {values.data() + r * cols, size_t(cols)});
  return values;
}

namespace {

/// A copy of `weight` (same name and type, inserted at the builder) holding
/// `bytes`, stored as the original is (dense or dense_resource).
tfm::WeightOp withBytes(OpBuilder &builder, tfm::WeightOp weight, ArrayRef<uint8_t> bytes) {
  ArrayRef<char> data(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  Attribute value;
  if (auto res = dyn_cast<DenseResourceElementsAttr>(weight.getValue()))
    value = DenseResourceElementsAttr::get(
        res.getType(), weight.getSymName(),
        HeapAsmResourceBlob::allocateAndCopyWithAlign(data, 64, /*dataIsMutable=*/false));
  else
    value = DenseElementsAttr::getFromRawBuffer(
        cast<ShapedType>(cast<DenseElementsAttr>(weight.getValue()).getType()), data);
  return tfm::WeightOp::create(builder, weight.getLoc(), weight.getResult().getType(),
                               weight.getSymNameAttr(), cast<ElementsAttr>(value));
}

/// x stored as `elementType` (f32, f16 or bf16; rounded to nearest even)
/// and read back.
float storedAs(Type elementType, float x) {
  if (elementType.isF16())
    return f16ToFloat(floatToF16(x));
  if (elementType.isBF16())
    return bf16ToFloat(floatToBf16(x));
  return x;
}

} // namespace

FailureOr<tfm::WeightOp> permuteWeightRows(OpBuilder &builder, tfm::WeightOp weight,
                                           ArrayRef<int64_t> from) {
  FailureOr<std::vector<uint8_t>> bytes = readWeightBytes(weight);
  if (failed(bytes))
    return failure();
  const size_t rows = from.size();
  if (rows == 0 || bytes->size() % rows != 0)
    return weight.emitOpError() << "cannot split into " << rows << " rows";
  const size_t rowBytes = bytes->size() / rows;
  std::vector<uint8_t> moved(bytes->size());
  for (size_t r = 0; r < rows; ++r)
    std::memcpy(moved.data() + r * rowBytes, bytes->data() + size_t(from[r]) * rowBytes,
                rowBytes);
  return withBytes(builder, weight, moved);
}

bool shiftIsExact(Type elementType, ArrayRef<float> values, int shift) {
  for (float v : values) {
    // A float times a power of two is exact in double (no float reaches
    // double's limits), so the product float rounding gives is compared
    // with the true one.
    const double exact = std::ldexp(double(v), shift);
    const float product = static_cast<float>(exact);
    if (!std::isfinite(product) || double(storedAs(elementType, product)) != exact)
      return false;
  }
  return true;
}

FailureOr<tfm::WeightOp> shiftWeightRows(OpBuilder &builder, tfm::WeightOp weight,
                                         ArrayRef<int> shifts) {
  auto type = cast<RankedTensorType>(weight.getResult().getType());
  Type et = type.getElementType();
  FailureOr<std::vector<float>> values = readWeightFloats(weight);
  if (failed(values))
    return failure();
  const size_t rows = shifts.size();
  if (rows == 0 || values->size() % rows != 0)
    return weight.emitOpError() << "cannot split into " << rows << " rows";
  const bool f32 = et.isF32(), f16 = et.isF16();
  const size_t cols = values->size() / rows, size = f32 ? 4 : 2;
  std::vector<uint8_t> bytes(values->size() * size);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) {
      const float v = std::ldexp((*values)[r * cols + c], shifts[r]);
      uint8_t *at = bytes.data() + (r * cols + c) * size;
      if (f32) {
        std::memcpy(at, &v, 4);
      } else {
        const uint16_t h = f16 ? floatToF16(v) : floatToBf16(v);
        std::memcpy(at, &h, 2);
      }
    }
  return withBytes(builder, weight, bytes);
}

std::optional<formats::FormatSpec> weightFormat(Type elementType) {
  auto quantized = dyn_cast<tfm::QuantizedTypeInterface>(elementType);
  if (!quantized)
    return std::nullopt;
  // The dialect's verifiers admit only names that parse.
  Expected<formats::FormatSpec> spec = formats::parseFormatSpec(quantized.getFormatName());
  return spec ? std::optional<formats::FormatSpec>(*spec) : std::nullopt;
}

Type formatType(MLIRContext *context, const formats::FormatSpec &spec) {
  using formats::FormatKind;
  switch (spec.kind) {
  case FormatKind::BFP:
    return tfm::BfpType::get(context, spec.mantissaBits, spec.blockSize);
  case FormatKind::MXINT8: return tfm::MxType::get(context, tfm::MxElement::int8);
  case FormatKind::MXFP8_E4M3: return tfm::MxType::get(context, tfm::MxElement::fp8_e4m3);
  case FormatKind::MXFP8_E5M2: return tfm::MxType::get(context, tfm::MxElement::fp8_e5m2);
  case FormatKind::MXFP6_E3M2: return tfm::MxType::get(context, tfm::MxElement::fp6_e3m2);
  case FormatKind::MXFP6_E2M3: return tfm::MxType::get(context, tfm::MxElement::fp6_e2m3);
  case FormatKind::MXFP4_E2M1: return tfm::MxType::get(context, tfm::MxElement::fp4_e2m1);
  case FormatKind::FP6_4P2:
    return tfm::Fp6SplitType::get(context, spec.perChannel ? 0 : spec.blockSize);
  case FormatKind::INT8:
  case FormatKind::INT4:
    return tfm::IntType::get(context, spec.kind == FormatKind::INT8 ? 8 : 4,
                             spec.blockSize, spec.symmetric);
  }
  return {};
}

/// A packed tfm.weight of `spec` for a [rows, cols] matrix whose bytes
/// `blob` holds.
static tfm::WeightOp packedWeightOf(OpBuilder &builder, Location loc, StringRef name,
                                    const formats::FormatSpec &spec, int64_t rows, int64_t cols,
                                    AsmResourceBlob blob) {
  auto type = RankedTensorType::get({rows, cols}, formatType(builder.getContext(), spec));
  auto valueType = RankedTensorType::get({static_cast<int64_t>(blob.getData().size())},
                                         builder.getIntegerType(8));
  auto value = DenseResourceElementsAttr::get(valueType, name, std::move(blob));
  return tfm::WeightOp::create(builder, loc, type, builder.getStringAttr(name), value);
}

tfm::WeightOp createPackedWeight(OpBuilder &builder, Location loc, StringRef name,
                                 const formats::FormatSpec &spec, int64_t rows,
                                 int64_t cols, ArrayRef<uint8_t> bytes) {
  ArrayRef<char> data(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  return packedWeightOf(
      builder, loc, name, spec, rows, cols,
      HeapAsmResourceBlob::allocateAndCopyWithAlign(data, 64, /*dataIsMutable=*/false));
}

tfm::WeightOp createUnfilledPackedWeight(OpBuilder &builder, Location loc, StringRef name,
                                         const formats::FormatSpec &spec, int64_t rows,
                                         int64_t cols) {
  const size_t bytes = formats::packedRowBytes(spec, cols) * size_t(rows);
  // Page-aligned, so any alignment a reader asks for holds.
  void *zeros = mmap(nullptr, std::max<size_t>(bytes, 1), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (zeros == MAP_FAILED) // no address space: owned zeros, as a heap blob
    return packedWeightOf(
        builder, loc, name, spec, rows, cols,
        HeapAsmResourceBlob::allocateAndCopyWithAlign(std::vector<char>(bytes), 64, false));
  return packedWeightOf(
      builder, loc, name, spec, rows, cols,
      AsmResourceBlob(ArrayRef<char>(static_cast<const char *>(zeros), bytes), 64,
                      [](void *data, size_t size, size_t) { munmap(data, std::max<size_t>(size, 1)); },
                      /*dataIsMutable=*/false));
}

tfm::WeightOp createFloatWeight(OpBuilder &builder, Location loc, StringRef name,
                                ArrayRef<int64_t> shape, ArrayRef<float> values) {
  auto type = RankedTensorType::get(shape, builder.getF32Type());
  // Small weights stay readable in the IR (tests, examples); model-sized
  // ones go to a resource blob instead of a huge attribute.
  if (values.size() <= 256)
    return tfm::WeightOp::create(builder, loc, type, builder.getStringAttr(name),
                                 DenseElementsAttr::get(type, values));
  ArrayRef<char> data(reinterpret_cast<const char *>(values.data()),
                      values.size() * sizeof(float));
  auto value = DenseResourceElementsAttr::get(
      type, name,
      HeapAsmResourceBlob::allocateAndCopyWithAlign(data, alignof(float),
                                                    /*dataIsMutable=*/false));
  return tfm::WeightOp::create(builder, loc, type, builder.getStringAttr(name), value);
}

} // namespace lathe
