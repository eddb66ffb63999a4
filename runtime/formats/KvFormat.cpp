#include "runtime/formats/KvFormat.h"

#include "runtime/formats/Bfp.h"
#include "runtime/formats/BitPacking.h"
#include "runtime/formats/IntGroup.h"
#include "runtime/formats/PackedCodes.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace lathe::formats {

namespace {

/// The largest KIVI value block (channels sharing a scale and zero).
constexpr int32_t kKiviMaxValueBlock = 256;

constexpr KvKind kKinds[] = {KvKind::F32,  KvKind::F16,  KvKind::BF16, KvKind::Int8,
                             KvKind::Bfp8, KvKind::Bfp4, KvKind::Int4, KvKind::Int2};

bool isBfp(KvKind kind) { return kind == KvKind::Bfp8 || kind == KvKind::Bfp4; }

/// Whether a block of all-finite values: the codecs of this folder refuse
/// NaN and infinity.
bool finite(std::span<const float> block) {
  return std::all_of(block.begin(), block.end(), [](float v) { return std::isfinite(v); });
}

/// KIVI's asymmetric min/max quantization of a set of values with range
/// [lo, hi]: an f16 scale (hi - lo) / qmax and an f16 zero lo, rounded to
/// f16 first so that the codes are chosen against the values that decode
/// them. NaN or infinity among the values, or a scale or zero past f16's
/// range, gives a NaN scale (the values decode to NaN).
struct KiviScale {
  uint16_t scale, zero;
  float s, z;
};

KiviScale kiviScale(float lo, float hi, bool finiteValues, int qmax) {
  KiviScale k;
  k.scale = floatToF16(static_cast<float>((double(hi) - double(lo)) / qmax));
  k.zero = floatToF16(lo);
  k.s = f16ToFloat(k.scale);
  k.z = f16ToFloat(k.zero);
  if (!finiteValues || !std::isfinite(k.s) || !std::isfinite(k.z)) {
    k.scale = floatToF16(std::numeric_limits<float>::quiet_NaN());
    k.s = f16ToFloat(k.scale);
  }
  return k;
}

/// 1 / s, or 0 when the scale is 0 or NaN (every code is then 0).
float kiviInverse(const KiviScale &k) { return k.s > 0.0f ? 1.0f / k.s : 0.0f; }

/// The code of x: roundHalfEven((x - z) * (1 / s)) clamped to [0, qmax],
/// in float (fmax/fmin also map NaN, from a poisoned set, to 0). Adding
/// and subtracting 2^23 rounds a float in [0, 2^22] to the nearest integer,
/// ties to even, without a library call (nearbyint needs SSE4.1, which the
/// x86-64 baseline lacks), so that the loops over a row vectorize.
inline uint32_t kiviCode(float x, float zero, float inverse, int qmax) {
  const float t = std::fmin(std::fmax((x - zero) * inverse, 0.0f), float(qmax));
  return static_cast<uint32_t>(static_cast<int32_t>((t + 8388608.0f) - 8388608.0f));
}

/// Packs n codes (n a multiple of 8 / bits), low bits first.
void packKiviCodes(const uint8_t *codes, int64_t n, int bits, uint8_t *out) {
  if (bits == 4) {
    for (int64_t i = 0; i < n / 2; ++i)
      out[i] = static_cast<uint8_t>(codes[2 * i] | (codes[2 * i + 1] << 4));
    return;
  }
  for (int64_t i = 0; i < n / 4; ++i)
    out[i] = static_cast<uint8_t>(codes[4 * i] | (codes[4 * i + 1] << 2) |
                                  (codes[4 * i + 2] << 4) | (codes[4 * i + 3] << 6));
}

/// Code c of a row of packed codes of `bits` bits, low bits first: the
/// bit-packing rule of BitPacking.h, so PackedCodes.h's extraction.
uint32_t kiviCodeAt(const uint8_t *codes, int64_t c, int bits) {
  return lathe_unpack_bits(codes, static_cast<uint32_t>(c), static_cast<uint32_t>(bits));
}

void storeF16(uint8_t *p, uint16_t h) { std::memcpy(p, &h, 2); }
float loadF16(const uint8_t *p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16ToFloat(h);
}

} // namespace

std::string_view kvKindName(KvKind kind) {
  switch (kind) {
  case KvKind::F32: return "f32";
  case KvKind::F16: return "f16";
  case KvKind::BF16: return "bf16";
  case KvKind::Int8: return "int8";
  case KvKind::Bfp8: return "bfp8";
  case KvKind::Bfp4: return "bfp4";
  case KvKind::Int4: return "int4";
  case KvKind::Int2: return "int2";
  }
  return "?";
}

std::string kvFormatName(KvFormat f) {
  std::string name(kvKindName(f.kind));
  if (isBfp(f.kind) && f.block > 0)
    name += ":block=" + std::to_string(f.block);
  if (f.kivi() && f.keyGroup > 0)
    name += ":group=" + std::to_string(f.keyGroup);
  // A row format's window when it has one, or when its kind has one by
  // default (bfp4:window=0), so that the name parses back to the format;
  // int8 and bfp8 without a window keep the names they had before windows.
  const bool rowWindow = f.window > 0 || (f.window == 0 && defaultKvWindow(f.kind) > 0);
  if ((f.kivi() && f.window >= 0) || (f.compressed() && !f.kivi() && rowWindow))
    name += ":window=" + std::to_string(f.window);
  return name;
}

namespace {

/// "N" of an option "name=N": a whole number in [0, max].
Expected<int32_t> optionValue(std::string_view option, size_t nameLength, int32_t max) {
  const std::string_view digits = option.substr(nameLength + 1);
  int32_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || value < 0 ||
      value > max)
    return Error(std::string(option) + ": expected a whole number from 0 to " +
                 std::to_string(max));
  return value;
}

} // namespace

Expected<KvFormat> parseKvFormat(std::string_view text) {
  const size_t colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  KvFormat f;
  bool known = false;
  for (KvKind kind : kKinds)
    if (name == kvKindName(kind)) {
      f.kind = kind;
      known = true;
    }
  if (!known)
    return Error("unknown KV format '" + std::string(name) +
                 "' (expected f32, f16, bf16, int8, bfp8, bfp4, int4 or int2)");
  if (f.compressed())
    f.window = -1;
  std::string_view rest = colon == std::string_view::npos ? "" : text.substr(colon + 1);
  if (colon != std::string_view::npos && !f.compressed())
    return Error(std::string(name) + " takes no options");
  const std::string expected = f.kivi()               ? " takes group=G and window=R)"
                               : f.kind == KvKind::Int8 ? " takes window=R; its block is "
                                                          "head_dim, one scale per token row "
                                                          "and KV head)"
                                                        : " takes block=N and window=R)";
  bool group = false, window = false;
  while (colon != std::string_view::npos) {
    const size_t next = rest.find(':');
    const std::string_view option = rest.substr(0, next);
    const std::string_view key = option.substr(0, option.find('='));
    const bool known = key == "window" || (isBfp(f.kind) && key == "block") ||
                       (f.kivi() && key == "group");
    if (option.find('=') == std::string_view::npos || !known)
      return Error("unknown option '" + std::string(option) + "' (" + std::string(name) +
                   expected);
    if ((key == "block" && f.block != 0) || (key == "group" && group) ||
        (key == "window" && window))
      return Error("option '" + std::string(key) + "' repeats");
    if (key == "block") {
      const std::string_view digits = option.substr(6);
      int32_t block = 0;
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), block);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
          block <= 0)
        return Error("block=" + std::string(digits) + ": expected a positive whole number");
      f.block = block;
    } else if (key == "group") {
      Expected<int32_t> value = optionValue(option, 5, kKiviMaxGroup);
      if (!value)
        return value.error();
      if (*value < 2)
        return Error(std::string(option) + ": a key group needs at least 2 tokens");
      f.keyGroup = *value;
      group = true;
    } else {
      Expected<int32_t> value = optionValue(option, 6, kKiviMaxWindow);
      if (!value)
        return value.error();
      f.window = *value;
      window = true;
    }
    if (next == std::string_view::npos)
      break;
    rest = rest.substr(next + 1);
  }
  return f;
}

int32_t defaultKvWindow(KvKind kind, int32_t keyGroup) {
  if (kind == KvKind::Int4 || kind == KvKind::Int2)
    return keyGroup;
  return kind == KvKind::Bfp4 ? kBfp4DefaultWindow : 0;
}

int32_t defaultKvBlock(KvKind kind, int64_t headDim, int32_t keyGroup) {
  if (kind == KvKind::Int8)
    return static_cast<int32_t>(headDim);
  const int32_t cap = kind == KvKind::Int4 || kind == KvKind::Int2 ? keyGroup : 32;
  if (headDim <= cap)
    return static_cast<int32_t>(headDim);
  int32_t block = 1;
  while (block * 2 <= cap)
    block *= 2;
  while (headDim % block != 0)
    block /= 2;
  return block;
}

Expected<KvFormat> resolveKvFormat(KvFormat f, int64_t headDim) {
  if (!f.compressed())
    return plainKvFormat(static_cast<ElementType>(f.kind));
  if (headDim <= 0 || headDim > std::numeric_limits<int32_t>::max())
    return Error("head_dim " + std::to_string(headDim) + " cannot be cut into blocks");
  if (f.kivi()) {
    if (f.keyGroup == 0)
      f.keyGroup = kKiviDefaultGroup;
    if (f.window < 0)
      f.window = defaultKvWindow(f.kind, f.keyGroup);
    const int perByte = 8 / kvCodeBits(f.kind);
    if (f.keyGroup < 2 || f.keyGroup > kKiviMaxGroup)
      return Error("group=" + std::to_string(f.keyGroup) + ": a key group holds 2 to " +
                   std::to_string(kKiviMaxGroup) + " tokens");
    if (f.window > kKiviMaxWindow)
      return Error("window=" + std::to_string(f.window) + ": at most " +
                   std::to_string(kKiviMaxWindow) + " tokens");
    if (headDim % perByte != 0)
      return Error(std::string(kvKindName(f.kind)) + " packs " + std::to_string(perByte) +
                   " channels a byte: head_dim " + std::to_string(headDim) + " is not a multiple");
    if (f.block == 0) {
      f.block = defaultKvBlock(f.kind, headDim, f.keyGroup);
      if (f.block % perByte != 0)
        return Error("group=" + std::to_string(f.keyGroup) + ": value blocks of " +
                     std::to_string(f.block) + " channels do not fill whole bytes of " +
                     std::string(kvKindName(f.kind)) + " codes (" + std::to_string(perByte) +
                     " a byte)");
    }
    if (f.block <= 0 || headDim % f.block != 0 || f.block % perByte != 0)
      return Error("value block " + std::to_string(f.block) + " does not divide head_dim " +
                   std::to_string(headDim) + " in whole bytes");
    if (f.block > kKiviMaxValueBlock)
      return Error("value block " + std::to_string(f.block) + ": at most " +
                   std::to_string(kKiviMaxValueBlock) + " channels");
    return f;
  }
  f.keyGroup = 0;
  if (f.window < 0)
    f.window = defaultKvWindow(f.kind);
  if (f.window > kKiviMaxWindow)
    return Error("window=" + std::to_string(f.window) + ": at most " +
                 std::to_string(kKiviMaxWindow) + " tokens");
  if (f.block == 0)
    f.block = defaultKvBlock(f.kind, headDim);
  if (f.kind == KvKind::Int8 && f.block != headDim)
    return Error("int8 has one scale per head: its block is head_dim " +
                 std::to_string(headDim) + ", not " + std::to_string(f.block));
  if (headDim % f.block != 0)
    return Error("block=" + std::to_string(f.block) + " does not divide head_dim " +
                 std::to_string(headDim));
  if (f.kind == KvKind::Bfp4 && f.block % 2 != 0)
    return Error("block=" + std::to_string(f.block) +
                 ": bfp4 needs an even block (two 4-bit mantissas a byte)");
  return f;
}

int kvCodeBits(KvKind kind) {
  return kind == KvKind::Bfp4 || kind == KvKind::Int4 ? 4 : kind == KvKind::Int2 ? 2 : 8;
}

size_t kvBlockHeaderBytes(KvFormat f) {
  return f.kind == KvKind::Int8 || f.kivi() ? 4 : 1;
}

size_t kvBlockBytes(KvFormat f) {
  if (f.kivi())
    return 4 + size_t(f.block) * size_t(kvCodeBits(f.kind)) / 8;
  if (f.kind == KvKind::Int8)
    return intGroupBytes(8, /*symmetric=*/true, size_t(f.block));
  return bfpBlockBytes(kvCodeBits(f.kind), size_t(f.block));
}

size_t kvRowBytes(KvFormat f, int64_t width) {
  if (auto element = plainElement(f))
    return size_t(width) * elementSize(*element);
  if (f.block <= 0)
    return 0;
  return size_t(width / f.block) * kvBlockBytes(f);
}

size_t kiviKeyGroupBytes(KvFormat f, int64_t width) {
  if (!f.kivi())
    return 0;
  return size_t(width) * 4 + size_t(f.keyGroup) * size_t(width) * kvCodeBits(f.kind) / 8;
}

void encodeKiviKeys(KvFormat f, const float *keys, int64_t rows, int64_t width, uint8_t *out) {
  const int bits = kvCodeBits(f.kind), qmax = (1 << bits) - 1;
  const size_t rowBytes = size_t(width) * bits / 8;
  // Row by row (the rows are contiguous): each channel's range, then its
  // scale and zero, then the codes.
  const size_t n = size_t(width);
  std::vector<float> lo(n, std::numeric_limits<float>::infinity());
  std::vector<float> hi(n, -std::numeric_limits<float>::infinity());
  std::vector<float> zero(n, 0.0f), inverse(n, 0.0f);
  std::vector<uint8_t> finiteChannel(n, 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) {
      const float v = keys[r * width + c];
      finiteChannel[size_t(c)] &= std::isfinite(v) ? 1 : 0;
      lo[size_t(c)] = std::min(lo[size_t(c)], v);
      hi[size_t(c)] = std::max(hi[size_t(c)], v);
    }
  for (int64_t c = 0; c < width; ++c) {
    const KiviScale k =
        kiviScale(lo[size_t(c)], hi[size_t(c)], finiteChannel[size_t(c)] != 0, qmax);
    storeF16(out + 2 * c, k.scale);
    storeF16(out + 2 * (width + c), k.zero);
    zero[size_t(c)] = k.z;
    inverse[size_t(c)] = kiviInverse(k);
  }
  uint8_t *codes = out + size_t(width) * 4;
  std::memset(codes, 0, size_t(f.keyGroup) * rowBytes);
  std::vector<uint8_t> rowCodes(n);
  for (int64_t r = 0; r < rows; ++r) {
    const float *x = keys + r * width;
    for (size_t c = 0; c < n; ++c)
      rowCodes[c] = static_cast<uint8_t>(kiviCode(x[c], zero[c], inverse[c], qmax));
    packKiviCodes(rowCodes.data(), width, bits, codes + size_t(r) * rowBytes);
  }
}

void decodeKiviKey(KvFormat f, const uint8_t *group, int64_t width, int64_t row, int64_t first,
                   std::span<float> out) {
  const int bits = kvCodeBits(f.kind);
  const uint8_t *codes = group + size_t(width) * 4 + size_t(row) * size_t(width) * bits / 8;
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t c = first + int64_t(i);
    out[i] = float(kiviCodeAt(codes, c, bits)) * loadF16(group + 2 * c) +
             loadF16(group + 2 * (width + c));
  }
}

void encodeKvRow(KvFormat f, std::span<const float> x, uint8_t *out) {
  if (auto element = plainElement(f)) {
    encodeFloats(x.data(), int64_t(x.size()), *element, out);
    return;
  }
  const size_t n = size_t(f.block), bytes = kvBlockBytes(f);
  if (f.kivi()) {
    // Per token: each block of channels its own scale and zero.
    const int bits = kvCodeBits(f.kind), qmax = (1 << bits) - 1;
    for (size_t b = 0; b * n < x.size(); ++b) {
      uint8_t *stored = out + b * bytes;
      const float *block = x.data() + b * n;
      float lo = std::numeric_limits<float>::infinity(), hi = -lo;
      bool finiteValues = true;
      for (size_t i = 0; i < n; ++i) {
        finiteValues = finiteValues && std::isfinite(block[i]);
        lo = std::min(lo, block[i]);
        hi = std::max(hi, block[i]);
      }
      const KiviScale k = kiviScale(lo, hi, finiteValues, qmax);
      storeF16(stored, k.scale);
      storeF16(stored + 2, k.zero);
      const float inverse = kiviInverse(k);
      uint8_t codes[kKiviMaxValueBlock];
      for (size_t i = 0; i < n; ++i)
        codes[i] = static_cast<uint8_t>(kiviCode(block[i], k.z, inverse, qmax));
      packKiviCodes(codes, int64_t(n), bits, stored + 4);
    }
    return;
  }
  for (size_t b = 0; b * n < x.size(); ++b) {
    std::span<const float> block = x.subspan(b * n, n);
    std::span<uint8_t> stored(out + b * bytes, bytes);
    if (!finite(block)) {
      std::fill(stored.begin(), stored.end(), uint8_t{0});
      if (f.kind == KvKind::Int8)
        storeFloat32(stored, std::numeric_limits<float>::quiet_NaN());
      else
        stored[0] = kBfpReservedExponentCode;
      continue;
    }
    // Finite values and a block the shape checks of resolveKvFormat passed:
    // the codecs cannot fail.
    Status s = f.kind == KvKind::Int8 ? encodeIntGroup(8, true, block, stored)
                                      : encodeBfpBlock(kvCodeBits(f.kind), block, stored);
    (void)s;
    // max|x| / 127 rounded up to float32 makes 127 * scale overflow when
    // max|x| is within an ulp of FLT_MAX: the scale one ulp lower decodes
    // every code to a finite value, moving each by under 2^-23 of itself.
    if (f.kind == KvKind::Int8) {
      const float scale = loadFloat32(stored);
      if (!std::isfinite(127.0f * scale))
        storeFloat32(stored, std::nextafter(scale, 0.0f));
    }
  }
}

void decodeKvValues(KvFormat f, const uint8_t *row, int64_t first, std::span<float> out) {
  if (auto element = plainElement(f)) {
    const size_t size = elementSize(*element);
    for (size_t i = 0; i < out.size(); ++i) {
      const uint8_t *p = row + (size_t(first) + i) * size;
      if (*element == ElementType::F32) {
        std::memcpy(&out[i], p, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, p, 2);
        out[i] = *element == ElementType::F16 ? f16ToFloat(h) : bf16ToFloat(h);
      }
    }
    return;
  }
  const size_t n = size_t(f.block), bytes = kvBlockBytes(f);
  for (size_t b = 0; b * n < out.size(); ++b) {
    std::span<const uint8_t> stored(row + (size_t(first) / n + b) * bytes, bytes);
    std::span<float> values = out.subspan(b * n, n);
    if (f.kivi()) {
      const float scale = loadF16(stored.data()), zero = loadF16(stored.data() + 2);
      for (size_t i = 0; i < n; ++i)
        values[i] = float(kiviCodeAt(stored.data() + 4, int64_t(i), kvCodeBits(f.kind))) * scale +
                    zero;
      continue;
    }
    if (f.kind == KvKind::Int8)
      decodeIntGroup(8, true, stored, values);
    else
      decodeBfpBlock(kvCodeBits(f.kind), stored, values);
  }
}

} // namespace lathe::formats
