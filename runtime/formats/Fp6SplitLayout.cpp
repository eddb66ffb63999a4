#include "runtime/formats/Fp6SplitLayout.h"

#include "runtime/formats/BitPacking.h"
#include "runtime/formats/Microscaling.h"
#include "runtime/formats/PackedCodes.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace lathe::formats {

namespace {

constexpr size_t kScaleBytes = 4;

bool validGroupSize(size_t groupSize) {
  return groupSize > 0 && groupSize % 4 == 0;
}

// The split, in one place: code = s e2 | e1 e0 m1 m0.
void storeCode(std::span<uint8_t> lowPlane, std::span<uint8_t> highPlane,
               size_t index, uint8_t code) {
  packBits(lowPlane, index, 4, code & 0x0Fu);
  packBits(highPlane, index, 2, (code >> 4) & 0x03u);
}

// The join is PackedCodes.h's, which the HLS projects share.
uint8_t loadCode(std::span<const uint8_t> lowPlane,
                 std::span<const uint8_t> highPlane, size_t index) {
  return static_cast<uint8_t>(lathe_fp6_split_code(
      lowPlane.data(), highPlane.data(), static_cast<uint32_t>(index)));
}

} // namespace

size_t fp6SplitGroupBytes(size_t groupSize) {
  return kScaleBytes + groupSize / 2 + groupSize / 4;
}

float fp6SplitScale(std::span<const float> group) {
  double maxAbs = 0.0;
  for (float v : group)
    maxAbs = std::max(maxAbs, std::fabs(static_cast<double>(v)));
  return static_cast<float>(maxAbs / kFp6E3M2Max);
}

void splitFp6Codes(std::span<const uint8_t> codes, std::span<uint8_t> lowPlane,
                   std::span<uint8_t> highPlane) {
  std::fill(lowPlane.begin(), lowPlane.end(), uint8_t{0});
  std::fill(highPlane.begin(), highPlane.end(), uint8_t{0});
  for (size_t i = 0; i < codes.size(); ++i)
    storeCode(lowPlane, highPlane, i, codes[i]);
}

void joinFp6Codes(std::span<const uint8_t> lowPlane,
                  std::span<const uint8_t> highPlane, std::span<uint8_t> codes) {
  for (size_t i = 0; i < codes.size(); ++i)
    codes[i] = loadCode(lowPlane, highPlane, i);
}

Status encodeFp6SplitGroup(std::span<const float> group,
                           std::span<uint8_t> out) {
  if (!validGroupSize(group.size()))
    return Error("fp6_4p2: a group of " + std::to_string(group.size()) +
                 " values is not a positive multiple of 4");
  const size_t need = fp6SplitGroupBytes(group.size());
  if (out.size() != need)
    return Error("fp6_4p2: output holds " + std::to_string(out.size()) +
                 " bytes, a group of " + std::to_string(group.size()) +
                 " values needs " + std::to_string(need));
  for (size_t i = 0; i < group.size(); ++i)
    if (!std::isfinite(group[i]))
      return Error("fp6_4p2: value " + std::to_string(i) + " of the group is " +
                   (std::isnan(group[i]) ? "NaN" : "infinite") +
                   "; FP6 E3M2 has no encoding for NaN or infinity");

  const float scale = fp6SplitScale(group);
  storeFloat32(out, scale);
  std::span<uint8_t> lowPlane = out.subspan(kScaleBytes, group.size() / 2);
  std::span<uint8_t> highPlane =
      out.subspan(kScaleBytes + group.size() / 2, group.size() / 4);
  std::fill(lowPlane.begin(), lowPlane.end(), uint8_t{0});
  std::fill(highPlane.begin(), highPlane.end(), uint8_t{0});
  if (scale == 0.0f) // all zeros: code 0 everywhere
    return Status::ok();
  for (size_t i = 0; i < group.size(); ++i) {
    // Divide by the stored float32 scale so that decoding multiplies by the
    // very number the code was chosen against.
    storeCode(lowPlane, highPlane, i,
              encodeMxElement(MxElement::FP6_E3M2,
                              static_cast<double>(group[i]) / scale));
  }
  return Status::ok();
}

void decodeFp6SplitGroup(std::span<const uint8_t> in, std::span<float> out) {
  if (!validGroupSize(out.size()) || in.size() != fp6SplitGroupBytes(out.size())) {
    std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
    return;
  }
  const float scale = loadFloat32(in);
  std::span<const uint8_t> lowPlane = in.subspan(kScaleBytes, out.size() / 2);
  std::span<const uint8_t> highPlane =
      in.subspan(kScaleBytes + out.size() / 2, out.size() / 4);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = lathe_fp6_e3m2_value(loadCode(lowPlane, highPlane, i)) * scale;
}

} // namespace lathe::formats
