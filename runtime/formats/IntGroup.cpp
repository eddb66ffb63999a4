#include "runtime/formats/IntGroup.h"

#include "runtime/formats/BitPacking.h"
#include "runtime/formats/PackedCodes.h"
#include "runtime/formats/Rounding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace lathe::formats {

namespace {

bool validShape(int bits, size_t groupSize) {
  return (bits == 8 || bits == 4) && groupSize > 0 &&
         (groupSize * bits) % 8 == 0;
}

size_t headerBytes(bool symmetric) { return symmetric ? 4 : 5; }

std::string formatLabel(int bits, bool symmetric) {
  return "int" + std::to_string(bits) + (symmetric ? "" : " asym");
}

} // namespace

size_t intGroupBytes(int bits, bool symmetric, size_t groupSize) {
  return headerBytes(symmetric) +
         packedBytes(groupSize, static_cast<unsigned>(bits));
}

IntGroupScale intGroupScale(int bits, bool symmetric,
                            std::span<const float> group) {
  IntGroupScale result;
  if (symmetric) {
    double maxAbs = 0.0;
    for (float v : group)
      maxAbs = std::max(maxAbs, std::fabs(static_cast<double>(v)));
    result.scale = static_cast<float>(maxAbs / ((1 << (bits - 1)) - 1));
    return result;
  }
  double lo = 0.0, hi = 0.0;
  for (float v : group) {
    lo = std::min(lo, static_cast<double>(v));
    hi = std::max(hi, static_cast<double>(v));
  }
  const double levels = (1 << bits) - 1;
  result.scale = static_cast<float>((hi - lo) / levels);
  if (result.scale > 0.0f)
    result.zeroPoint = static_cast<int32_t>(
        std::clamp(roundHalfEven(-lo / result.scale), 0.0, levels));
  return result;
}

Status encodeIntGroup(int bits, bool symmetric, std::span<const float> group,
                      std::span<uint8_t> out) {
  // Named only on failure: a string a group cost the quantization of a
  // 32000 x 288 classifier 288k allocations.
  const auto label = [&] { return formatLabel(bits, symmetric); };
  if (!validShape(bits, group.size()))
    return Error(label() + ": a group of " + std::to_string(group.size()) +
                 " values of " + std::to_string(bits) +
                 " bits is not supported (bits must be 8 or 4, the group a "
                 "whole number of bytes)");
  const size_t need = intGroupBytes(bits, symmetric, group.size());
  if (out.size() != need)
    return Error(label() + ": output holds " + std::to_string(out.size()) +
                 " bytes, a group of " + std::to_string(group.size()) +
                 " values needs " + std::to_string(need));
  for (size_t i = 0; i < group.size(); ++i)
    if (!std::isfinite(group[i]))
      return Error(label() + ": value " + std::to_string(i) + " of the group is " +
                   (std::isnan(group[i]) ? "NaN" : "infinite") +
                   "; integer formats have no encoding for NaN or infinity");

  const IntGroupScale gs = intGroupScale(bits, symmetric, group);
  storeFloat32(out, gs.scale);
  if (!symmetric)
    out[4] = static_cast<uint8_t>(gs.zeroPoint);
  std::span<uint8_t> codes = out.subspan(headerBytes(symmetric));
  std::fill(codes.begin(), codes.end(), uint8_t{0});
  if (gs.scale == 0.0f) { // all zeros: q = z = 0 decodes to 0
    return Status::ok();
  }
  // Quantize against the stored float32 scale, not the exact ratio, so that
  // decoding reproduces exactly the grid the codes were chosen on.
  const double scale = gs.scale;
  const double lo = symmetric ? -((1 << (bits - 1)) - 1) : 0.0;
  const double hi = symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  for (size_t i = 0; i < group.size(); ++i) {
    const double q =
        std::clamp(roundHalfEven(group[i] / scale) + gs.zeroPoint, lo, hi);
    packBits(codes, i, static_cast<unsigned>(bits),
             static_cast<uint32_t>(static_cast<int32_t>(q)));
  }
  return Status::ok();
}

void decodeIntGroup(int bits, bool symmetric, std::span<const uint8_t> in,
                    std::span<float> out) {
  if (!validShape(bits, out.size()) ||
      in.size() != intGroupBytes(bits, symmetric, out.size())) {
    std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
    return;
  }
  const float scale = loadFloat32(in);
  const int32_t zeroPoint = symmetric ? 0 : in[4];
  std::span<const uint8_t> codes = in.subspan(headerBytes(symmetric));
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t code = unpackBits(codes, i, static_cast<unsigned>(bits));
    out[i] = lathe_int_group_value(code, static_cast<uint32_t>(bits), symmetric,
                                   zeroPoint, scale);
  }
}

} // namespace lathe::formats
