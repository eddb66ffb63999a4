#include "runtime/formats/Microscaling.h"

#include "runtime/formats/BitPacking.h"
#include "runtime/formats/PackedCodes.h"
#include "runtime/formats/Rounding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace lathe::formats {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Exponent and mantissa fields of a non-negative value that is exactly
// representable in the format (0, a subnormal or a normal <= maxNormal).
uint32_t magnitudeCode(const MxElementInfo &info, double magnitude) {
  if (magnitude == 0.0)
    return 0;
  const int emin = 1 - info.bias;
  const int e = std::ilogb(magnitude);
  if (e < emin) // subnormal: exponent field 0, mantissa = value / 2^(emin-m)
    return static_cast<uint32_t>(
        std::ldexp(magnitude, info.mantissaBits - emin));
  const uint32_t mantissa = static_cast<uint32_t>(
      std::ldexp(magnitude, info.mantissaBits - e) - (1 << info.mantissaBits));
  return (static_cast<uint32_t>(e + info.bias) << info.mantissaBits) | mantissa;
}

// Which codes lathe_minifloat_value reads as NaN: E4M3's S.1111.111 (1),
// E5M2's S.11111.xx with xx != 00 (2), none (0); as isMxElementNaN says.
int mxNanRule(MxElement element) {
  switch (element) {
  case MxElement::FP8_E4M3: return 1;
  case MxElement::FP8_E5M2: return 2;
  default: return 0;
  }
}

bool validBlockShape(MxElement element, size_t count) {
  return count > 0 && (count * mxElementInfo(element).bits) % 8 == 0;
}

} // namespace

uint8_t encodeMxElement(MxElement element, double value) {
  const MxElementInfo info = mxElementInfo(element);
  if (element == MxElement::INT8) {
    if (std::isnan(value))
      return 0;
    // ldexp(+-inf) stays infinite and saturates like any large value.
    const double q = std::clamp(roundHalfEven(std::ldexp(value, 6)), -127.0,
                                127.0);
    return static_cast<uint8_t>(static_cast<int8_t>(q));
  }
  const uint32_t sign = std::signbit(value) ? 1u << (info.bits - 1) : 0u;
  const uint32_t allExponent = ((1u << info.exponentBits) - 1u)
                               << info.mantissaBits;
  if (std::isnan(value)) {
    if (!info.hasNaN)
      return 0;
    // E4M3 has exactly one NaN per sign; E5M2's canonical one is S.11111.11.
    return static_cast<uint8_t>(sign | allExponent |
                                ((1u << info.mantissaBits) - 1u));
  }
  const double magnitude = std::fabs(value);
  if (std::isinf(magnitude) && info.hasInf)
    return static_cast<uint8_t>(sign | allExponent);
  double rounded = info.maxNormal;
  if (!std::isinf(magnitude)) {
    // The quantum is 2^(e - m) in the binade of the value and 2^(emin - m)
    // for subnormals; dividing by it is exact, so roundHalfEven sees the
    // true value. Rounding up may leave the binade, which magnitudeCode
    // handles by looking at the result.
    const int emin = 1 - info.bias;
    const int e = magnitude > 0.0 ? std::max(std::ilogb(magnitude), emin) : emin;
    const int quantum = e - info.mantissaBits;
    rounded = std::min(
        std::ldexp(roundHalfEven(std::ldexp(magnitude, -quantum)), quantum),
        info.maxNormal);
  }
  return static_cast<uint8_t>(sign | magnitudeCode(info, rounded));
}

bool isMxElementNaN(MxElement element, uint8_t code) {
  switch (element) {
  case MxElement::FP8_E4M3: return (code & 0x7F) == 0x7F;
  case MxElement::FP8_E5M2: return (code & 0x7C) == 0x7C && (code & 0x03) != 0;
  default: return false;
  }
}

// The decoding is PackedCodes.h's, shared with the HLS projects.
float decodeMxElement(MxElement element, uint8_t code) {
  if (element == MxElement::INT8)
    return lathe_mxint8_value(code);
  const MxElementInfo info = mxElementInfo(element);
  return lathe_minifloat_value(
      code, info.bits, static_cast<uint32_t>(info.exponentBits),
      static_cast<uint32_t>(info.mantissaBits), info.bias, info.hasInf,
      mxNanRule(element));
}

float decodeE8M0(uint8_t code) {
  if (code == kE8M0NaN)
    return kNaN;
  return static_cast<float>(lathe_pow2(static_cast<int>(code) - kE8M0Bias));
}

uint8_t mxScaleCode(MxElement element, std::span<const float> block) {
  double maxAbs = 0.0;
  for (float v : block) {
    if (!std::isfinite(v))
      return kE8M0NaN;
    maxAbs = std::max(maxAbs, std::fabs(static_cast<double>(v)));
  }
  if (maxAbs == 0.0)
    return 0;
  // ilogb is floor(log2) exactly. Float32 inputs keep the exponent at or
  // below 127, so the spec's "overflow -> NaN" case cannot arise; tiny
  // blocks clamp to 2^-127 and their elements flush towards zero.
  const int exponent = std::ilogb(maxAbs) - mxElementInfo(element).emax;
  if (exponent > 127)
    return kE8M0NaN;
  return static_cast<uint8_t>(std::max(exponent, -127) + kE8M0Bias);
}

size_t mxBlockBytes(MxElement element, size_t blockSize) {
  return 1 + packedBytes(blockSize, mxElementInfo(element).bits);
}

Status encodeMxBlock(MxElement element, std::span<const float> block,
                     std::span<uint8_t> out) {
  const MxElementInfo info = mxElementInfo(element);
  const std::string name = "mx" + std::string(info.name);
  if (!validBlockShape(element, block.size()))
    return Error(name + ": a block of " + std::to_string(block.size()) +
                 " values does not pack into whole bytes");
  const size_t need = mxBlockBytes(element, block.size());
  if (out.size() != need)
    return Error(name + ": output holds " + std::to_string(out.size()) +
                 " bytes, a block of " + std::to_string(block.size()) +
                 " values needs " + std::to_string(need));
  const uint8_t scale = mxScaleCode(element, block);
  out[0] = scale;
  std::span<uint8_t> codes = out.subspan(1);
  std::fill(codes.begin(), codes.end(), uint8_t{0});
  if (scale == kE8M0NaN)
    return Status::ok();
  const int exponent = static_cast<int>(scale) - kE8M0Bias;
  for (size_t i = 0; i < block.size(); ++i)
    packBits(codes, i, info.bits,
             encodeMxElement(element, std::ldexp(static_cast<double>(block[i]),
                                                 -exponent)));
  return Status::ok();
}

void decodeMxBlock(MxElement element, std::span<const uint8_t> in,
                   std::span<float> out) {
  if (!validBlockShape(element, out.size()) ||
      in.size() != mxBlockBytes(element, out.size()) || in[0] == kE8M0NaN) {
    std::fill(out.begin(), out.end(), kNaN);
    return;
  }
  const unsigned bits = mxElementInfo(element).bits;
  std::span<const uint8_t> codes = in.subspan(1);
  for (size_t i = 0; i < out.size(); ++i) {
    const float p = decodeMxElement(
        element, static_cast<uint8_t>(unpackBits(codes, i, bits)));
    out[i] = lathe_mx_scaled(p, in[0]);
  }
}

} // namespace lathe::formats
