// How the KV cache stores a row of keys or values: the one description of a
// KV format (lathe-compile --kv=SPEC), used by the driver, the dialect's
// cache type, the artifact, the paged cache's layout, the store step and
// every attention kernel.
//
// A row holds kv_heads * head_dim values. Plain formats store each as an
// f32, f16 or bf16 element. The compressed formats cut the row into blocks
// of `block` consecutive values that never cross a head (block divides
// head_dim), each encoded on its own by a codec of this folder:
//   int8        IntGroup.h's symmetric INT8 group: a float32 scale
//               max|x| / 127 and int8 codes; block = head_dim, i.e. one
//               scale per token row and KV head
//   bfp8, bfp4  Bfp.h's block: a shared 8-bit exponent and 8/4-bit
//               two's-complement mantissas
// The blocks of a row are stored back to back, so attention decodes one
// head's slice of a row without touching the rest of the cache.
#pragma once

#include "runtime/formats/ElementType.h"
#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lathe::formats {

enum class KvKind : uint8_t { F32 = 0, F16 = 1, BF16 = 2, Int8 = 3, Bfp8 = 4, Bfp4 = 5 };

struct KvFormat {
  KvKind kind = KvKind::F32;
  /// Values per scale or exponent (compressed kinds). 0 for plain kinds, and
  /// for a compressed kind parsed without block=N until resolveKvFormat
  /// picks the default for the model's head_dim.
  int32_t block = 0;

  bool compressed() const { return kind >= KvKind::Int8; }
  friend bool operator==(const KvFormat &, const KvFormat &) = default;
};

/// The plain format storing `element`.
inline KvFormat plainKvFormat(ElementType element) {
  return KvFormat{static_cast<KvKind>(element), 0};
}
/// The element type of a plain format; nullopt for a compressed one.
inline std::optional<ElementType> plainElement(KvFormat f) {
  if (f.compressed())
    return std::nullopt;
  return static_cast<ElementType>(f.kind);
}

/// "f32", "f16", "bf16", "int8", "bfp8", "bfp4": the kind's name.
std::string_view kvKindName(KvKind kind);
/// The canonical spec: "f16", "int8", "bfp4:block=16" (a resolved bfp
/// block is always written; int8's block is head_dim, implied).
std::string kvFormatName(KvFormat f);

/// Reads `f32`, `f16`, `bf16`, `int8`, `bfp8[:block=N]`, `bfp4[:block=N]`.
/// The block is left 0 when not given. Errors name the bad part:
/// "unknown KV format 'f8' (expected f32, f16, bf16, int8, bfp8 or bfp4)".
Expected<KvFormat> parseKvFormat(std::string_view text);

/// The block a compressed kind gets without block=N: int8 always head_dim;
/// bfp 32, or head_dim when that is smaller, or for a head_dim above 32
/// that 32 does not divide (48, 80) the largest power of two dividing both
/// (16): blocks must tile each head exactly.
int32_t defaultKvBlock(KvKind kind, int64_t headDim);

/// Fills in the default block and checks the format against the model's
/// head_dim: a block that does not divide head_dim, or a bfp4 block of an
/// odd number of values (not a whole number of bytes), is an Error such as
/// "block=32 does not divide head_dim 48".
Expected<KvFormat> resolveKvFormat(KvFormat f, int64_t headDim);

/// Bytes of one block (compressed kinds): the header (a float32 scale or an
/// exponent byte) and the packed codes.
size_t kvBlockBytes(KvFormat f);
/// Bytes of the header of each block: 4 (int8's scale) or 1 (bfp's exponent).
size_t kvBlockHeaderBytes(KvFormat f);
/// Mantissa or code bits of a compressed kind: 8 or 4.
int kvCodeBits(KvKind kind);
/// Bytes of a row of `width` values, scales and exponents included.
size_t kvRowBytes(KvFormat f, int64_t width);

/// Encodes a row of x.size() values into out (kvRowBytes bytes). Never
/// fails: a block holding NaN or infinity is stored as a block that decodes
/// to NaN (a NaN scale, the reserved BFP exponent 255), so a diverging
/// model poisons attention as it would with an f32 cache.
void encodeKvRow(KvFormat f, std::span<const float> x, uint8_t *out);

/// Decodes values [first, first + out.size()) of a row; for compressed
/// kinds first and out.size() are multiples of the block.
void decodeKvValues(KvFormat f, const uint8_t *row, int64_t first, std::span<float> out);

} // namespace lathe::formats
