#include "runtime/formats/Bfp.h"

#include "runtime/formats/BitPacking.h"
#include "runtime/formats/PackedCodes.h"
#include "runtime/formats/Rounding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace lathe::formats {

namespace {

bool validShape(int mantissaBits, size_t blockSize) {
  return mantissaBits >= 2 && mantissaBits <= 8 && blockSize > 0 &&
         (blockSize * mantissaBits) % 8 == 0;
}

} // namespace

size_t bfpBlockBytes(int mantissaBits, size_t blockSize) {
  return 1 + packedBytes(blockSize, static_cast<unsigned>(mantissaBits));
}

int bfpSharedExponent(std::span<const float> block) {
  double maxAbs = 0.0;
  for (float v : block)
    maxAbs = std::max(maxAbs, std::fabs(static_cast<double>(v)));
  if (maxAbs == 0.0)
    return kBfpMinExponent;
  // ilogb is floor(log2) without rounding error; float subnormals are normal
  // doubles, so it is exact for them too.
  return std::clamp(std::ilogb(maxAbs), kBfpMinExponent, kBfpMaxExponent);
}

Status encodeBfpBlock(int mantissaBits, std::span<const float> block,
                      std::span<uint8_t> out) {
  if (!validShape(mantissaBits, block.size()))
    return Error("bfp: " + std::to_string(block.size()) + " values of " +
                 std::to_string(mantissaBits) +
                 " bits do not make a block (mantissa bits must be in [2, 8] "
                 "and the block a whole number of bytes)");
  const size_t need = bfpBlockBytes(mantissaBits, block.size());
  if (out.size() != need)
    return Error("bfp: output holds " + std::to_string(out.size()) +
                 " bytes, a block of " + std::to_string(block.size()) + " " +
                 std::to_string(mantissaBits) + "-bit mantissas needs " +
                 std::to_string(need));
  for (size_t i = 0; i < block.size(); ++i)
    if (!std::isfinite(block[i]))
      return Error("bfp: value " + std::to_string(i) + " of the block is " +
                   (std::isnan(block[i]) ? "NaN" : "infinite") +
                   "; BFP has no encoding for NaN or infinity");

  const int exponent = bfpSharedExponent(block);
  out[0] = static_cast<uint8_t>(exponent + kBfpExponentBias);
  const int stepExponent = exponent - (mantissaBits - 2);
  const double qmax = bfpMaxMantissa(mantissaBits);
  std::span<uint8_t> mantissas = out.subspan(1);
  std::fill(mantissas.begin(), mantissas.end(), uint8_t{0});
  // Scaling a float by 2^-stepExponent (at most 2^135) is exact in double,
  // so the only rounding is the one roundHalfEven does.
  const double inverseStep = std::ldexp(1.0, -stepExponent);
  for (size_t i = 0; i < block.size(); ++i) {
    const double q = std::clamp(
        roundHalfEven(static_cast<double>(block[i]) * inverseStep), -qmax, qmax);
    packBits(mantissas, i, static_cast<unsigned>(mantissaBits),
             static_cast<uint32_t>(static_cast<int32_t>(q)));
  }
  return Status::ok();
}

void decodeBfpBlock(int mantissaBits, std::span<const uint8_t> in,
                    std::span<float> out) {
  if (!validShape(mantissaBits, out.size()) ||
      in.size() != bfpBlockBytes(mantissaBits, out.size()) ||
      in[0] == kBfpReservedExponentCode) {
    std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
    return;
  }
  const int stepExponent =
      static_cast<int>(in[0]) - kBfpExponentBias - (mantissaBits - 2);
  std::span<const uint8_t> mantissas = in.subspan(1);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t code =
        unpackBits(mantissas, i, static_cast<unsigned>(mantissaBits));
    out[i] = lathe_bfp_value(code, static_cast<uint32_t>(mantissaBits),
                             stepExponent);
  }
}

} // namespace lathe::formats
