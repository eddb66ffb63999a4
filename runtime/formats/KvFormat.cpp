#include "runtime/formats/KvFormat.h"

#include "runtime/formats/Bfp.h"
#include "runtime/formats/BitPacking.h"
#include "runtime/formats/IntGroup.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace lathe::formats {

namespace {

constexpr KvKind kKinds[] = {KvKind::F32,  KvKind::F16,  KvKind::BF16,
                             KvKind::Int8, KvKind::Bfp8, KvKind::Bfp4};

bool isBfp(KvKind kind) { return kind == KvKind::Bfp8 || kind == KvKind::Bfp4; }

/// Whether a block of all-finite values: the codecs of this folder refuse
/// NaN and infinity.
bool finite(std::span<const float> block) {
  return std::all_of(block.begin(), block.end(), [](float v) { return std::isfinite(v); });
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
  }
  return "?";
}

std::string kvFormatName(KvFormat f) {
  std::string name(kvKindName(f.kind));
  if (isBfp(f.kind) && f.block > 0)
    name += ":block=" + std::to_string(f.block);
  return name;
}

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
                 "' (expected f32, f16, bf16, int8, bfp8 or bfp4)");
  std::string_view rest = colon == std::string_view::npos ? "" : text.substr(colon + 1);
  if (colon != std::string_view::npos && !isBfp(f.kind))
    return Error(std::string(name) + " takes no options" +
                 (f.kind == KvKind::Int8 ? " (one scale per token row and KV head)" : ""));
  while (colon != std::string_view::npos) {
    const size_t next = rest.find(':');
    const std::string_view option = rest.substr(0, next);
    if (option.substr(0, 6) != "block=")
      return Error("unknown option '" + std::string(option) + "' (" + std::string(name) +
                   " takes block=N)");
    if (f.block != 0)
      return Error("option 'block' repeats");
    const std::string_view digits = option.substr(6);
    int32_t block = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), block);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
        block <= 0)
      return Error("block=" + std::string(digits) + ": expected a positive whole number");
    f.block = block;
    if (next == std::string_view::npos)
      break;
    rest = rest.substr(next + 1);
  }
  return f;
}

int32_t defaultKvBlock(KvKind kind, int64_t headDim) {
  if (kind == KvKind::Int8)
    return static_cast<int32_t>(headDim);
  if (headDim <= 32)
    return static_cast<int32_t>(headDim);
  int32_t block = 32;
  while (headDim % block != 0)
    block /= 2;
  return block;
}

Expected<KvFormat> resolveKvFormat(KvFormat f, int64_t headDim) {
  if (!f.compressed())
    return plainKvFormat(static_cast<ElementType>(f.kind));
  if (headDim <= 0 || headDim > std::numeric_limits<int32_t>::max())
    return Error("head_dim " + std::to_string(headDim) + " cannot be cut into blocks");
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

int kvCodeBits(KvKind kind) { return kind == KvKind::Bfp4 ? 4 : 8; }

size_t kvBlockHeaderBytes(KvFormat f) { return f.kind == KvKind::Int8 ? 4 : 1; }

size_t kvBlockBytes(KvFormat f) {
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

void encodeKvRow(KvFormat f, std::span<const float> x, uint8_t *out) {
  if (auto element = plainElement(f)) {
    encodeFloats(x.data(), int64_t(x.size()), *element, out);
    return;
  }
  const size_t n = size_t(f.block), bytes = kvBlockBytes(f);
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
    if (f.kind == KvKind::Int8)
      decodeIntGroup(8, true, stored, values);
    else
      decodeBfpBlock(kvCodeBits(f.kind), stored, values);
  }
}

} // namespace lathe::formats
