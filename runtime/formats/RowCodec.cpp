#include "runtime/formats/RowCodec.h"

#include "runtime/formats/Bfp.h"
#include "runtime/formats/Fp6SplitLayout.h"
#include "runtime/formats/IntGroup.h"
#include "runtime/formats/Microscaling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace lathe::formats {

namespace {

int integerBits(FormatKind kind) { return kind == FormatKind::INT8 ? 8 : 4; }

Status encodeBlock(const FormatSpec &spec, std::span<const float> values,
                   std::span<uint8_t> out) {
  switch (spec.kind) {
  case FormatKind::BFP: return encodeBfpBlock(spec.mantissaBits, values, out);
  case FormatKind::FP6_4P2: return encodeFp6SplitGroup(values, out);
  case FormatKind::INT8:
  case FormatKind::INT4:
    return encodeIntGroup(integerBits(spec.kind), spec.symmetric, values, out);
  default: return encodeMxBlock(mxElementOf(spec.kind), values, out);
  }
}

void decodeBlock(const FormatSpec &spec, std::span<const uint8_t> in,
                 std::span<float> out) {
  switch (spec.kind) {
  case FormatKind::BFP: decodeBfpBlock(spec.mantissaBits, in, out); return;
  case FormatKind::FP6_4P2: decodeFp6SplitGroup(in, out); return;
  case FormatKind::INT8:
  case FormatKind::INT4:
    decodeIntGroup(integerBits(spec.kind), spec.symmetric, in, out);
    return;
  default: decodeMxBlock(mxElementOf(spec.kind), in, out); return;
  }
}

} // namespace

size_t rowBlockValues(const FormatSpec &spec, int64_t cols) {
  if (cols <= 0 || !validateFormatSpec(spec))
    return 0;
  if (spec.kind == FormatKind::FP6_4P2 && spec.perChannel)
    return (static_cast<size_t>(cols) + 3) / 4 * 4;
  return static_cast<size_t>(spec.blockSize);
}

size_t rowBlockBytes(const FormatSpec &spec, int64_t cols) {
  const size_t values = rowBlockValues(spec, cols);
  if (values == 0)
    return 0;
  switch (spec.kind) {
  case FormatKind::BFP: return bfpBlockBytes(spec.mantissaBits, values);
  case FormatKind::FP6_4P2: return fp6SplitGroupBytes(values);
  case FormatKind::INT8:
  case FormatKind::INT4:
    return intGroupBytes(integerBits(spec.kind), spec.symmetric, values);
  default: return mxBlockBytes(mxElementOf(spec.kind), values);
  }
}

size_t packedRowBytes(const FormatSpec &spec, int64_t cols) {
  const size_t values = rowBlockValues(spec, cols);
  if (values == 0)
    return 0;
  const size_t blocks = (static_cast<size_t>(cols) + values - 1) / values;
  return blocks * rowBlockBytes(spec, cols);
}

double bitsPerWeight(const FormatSpec &spec) {
  if (!validateFormatSpec(spec))
    return 0.0;
  if (spec.kind == FormatKind::FP6_4P2 && spec.perChannel)
    return 6.0;
  return bitsPerWeight(spec, spec.blockSize);
}

double bitsPerWeight(const FormatSpec &spec, int64_t cols) {
  if (cols <= 0)
    return 0.0;
  return 8.0 * static_cast<double>(packedRowBytes(spec, cols)) /
         static_cast<double>(cols);
}

Status quantizeRow(const FormatSpec &spec, std::span<const float> row,
                   std::span<uint8_t> out) {
  if (Status valid = validateFormatSpec(spec); !valid)
    return Error("quantizeRow: " + valid.error().message());
  const std::string name = formatName(spec);
  const int64_t cols = static_cast<int64_t>(row.size());
  const size_t need = packedRowBytes(spec, cols);
  if (out.size() != need)
    return Error("quantizeRow(" + name + "): output holds " +
                 std::to_string(out.size()) + " bytes, a row of " +
                 std::to_string(cols) + " values needs " + std::to_string(need));
  if (row.empty())
    return Status::ok();
  if (!isMicroscaling(spec.kind))
    for (size_t i = 0; i < row.size(); ++i)
      if (!std::isfinite(row[i]))
        return Error("quantizeRow(" + name + "): column " + std::to_string(i) +
                     " is " + (std::isnan(row[i]) ? "NaN" : "infinite") +
                     "; only the MX formats can encode NaN or infinity");

  const size_t blockValues = rowBlockValues(spec, cols);
  const size_t blockBytes = rowBlockBytes(spec, cols);
  std::vector<float> padded;
  for (size_t start = 0, b = 0; start < row.size(); start += blockValues, ++b) {
    std::span<const float> values =
        row.subspan(start, std::min(blockValues, row.size() - start));
    if (values.size() < blockValues) {
      padded.assign(blockValues, 0.0f);
      std::copy(values.begin(), values.end(), padded.begin());
      values = padded;
    }
    if (Status s = encodeBlock(spec, values, out.subspan(b * blockBytes, blockBytes));
        !s)
      return Error("quantizeRow(" + name + "): block " + std::to_string(b) +
                   ": " + s.error().message());
  }
  return Status::ok();
}

void dequantizeRow(const FormatSpec &spec, std::span<const uint8_t> packed,
                   std::span<float> out) {
  const int64_t cols = static_cast<int64_t>(out.size());
  if (out.empty())
    return;
  const size_t blockValues = rowBlockValues(spec, cols);
  if (blockValues == 0 || packed.size() != packedRowBytes(spec, cols)) {
    std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
    return;
  }
  const size_t blockBytes = rowBlockBytes(spec, cols);
  std::vector<float> padded;
  for (size_t start = 0, b = 0; start < out.size(); start += blockValues, ++b) {
    std::span<const uint8_t> in = packed.subspan(b * blockBytes, blockBytes);
    const size_t count = std::min(blockValues, out.size() - start);
    if (count == blockValues) {
      decodeBlock(spec, in, out.subspan(start, count));
    } else {
      padded.resize(blockValues);
      decodeBlock(spec, in, padded);
      std::copy_n(padded.begin(), count, out.begin() + static_cast<ptrdiff_t>(start));
    }
  }
}

} // namespace lathe::formats
