// How the KV cache stores a row of keys or values: the one description of a
// KV format (lathe-compile --kv=SPEC), used by the driver, the dialect's
// cache type, the artifact, the paged cache's layout, the store step and
// every attention kernel. (The CUDA backend keeps a compressed row's bytes
// in its own order, its codes and then its headers: PackedKv in
// runtime/backends/cuda/kernels/CudaAttention.cuh.)
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
//
// int4 and int2 are KIVI's (Liu et al. 2024) asymmetric min/max codes, and
// quantize keys and values along different axes:
//   values      per token, as the row formats above: blocks of `block`
//               channels, each an f16 scale (max - min) / qmax, an f16 zero
//               (min) and its codes, back to back;
//   keys        per channel: a group of `keyGroup` consecutive tokens (one
//               paged block of the cache) has per channel an f16 scale and
//               zero over those tokens, then the group's rows of codes;
//   window      the `window` most recent tokens of a sequence (at least;
//               the paged cache quantizes whole blocks) stay f32.
// The paged cache (kv/PagedKVCache.h) holds the f32 window and quantizes a
// block when it leaves the window; docs/formats.md has the layout.
//
// The row formats (int8, bfp8, bfp4) may keep such a window too
// (`:window=R`, R > 0): the newest R tokens (at least) stay f32 and a block
// is encoded (encodeKvRow's bytes) when it leaves the window. bfp4 has a
// window of kBfp4DefaultWindow tokens by default (issue 20: it brings bfp4's
// KL to the f32 cache under 0.05 on stories15M, docs/benchmarks.md), int8
// and bfp8 none; window 0 is no window, the layout of old artifacts.
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

enum class KvKind : uint8_t {
  F32 = 0,
  F16 = 1,
  BF16 = 2,
  Int8 = 3,
  Bfp8 = 4,
  Bfp4 = 5,
  Int4 = 6, // KIVI, keys per channel and values per token
  Int2 = 7, // KIVI
};

struct KvFormat {
  KvKind kind = KvKind::F32;
  /// Values per scale or exponent (compressed kinds). 0 for plain kinds, and
  /// for a compressed kind parsed without block=N until resolveKvFormat
  /// picks the default for the model's head_dim.
  int32_t block = 0;
  /// KIVI kinds (int4, int2): tokens per key group, which is also the paged
  /// cache's block. Compressed kinds: the most recent tokens kept in f32 (0:
  /// none, every row encoded as it is stored). 0 for plain kinds;
  /// parseKvFormat leaves keyGroup 0 and window -1 when not given, until
  /// resolveKvFormat picks the defaults.
  int32_t keyGroup = 0;
  int32_t window = 0;

  bool compressed() const { return kind >= KvKind::Int8; }
  /// int4 or int2: keys quantized per channel over groups of tokens.
  bool kivi() const { return kind == KvKind::Int4 || kind == KvKind::Int2; }
  /// Whether the cache writes rows in f32 to a window and encodes whole
  /// blocks as they leave it: KIVI always (even with window 0, since its
  /// keys need a whole group), int8/bfp8/bfp4 with a window.
  bool windowed() const { return kivi() || (compressed() && window > 0); }
  friend bool operator==(const KvFormat &, const KvFormat &) = default;
};

/// The plain format storing `element`.
inline KvFormat plainKvFormat(ElementType element) {
  return KvFormat{static_cast<KvKind>(element), 0, 0, 0};
}
/// The element type of a plain format; nullopt for a compressed one.
inline std::optional<ElementType> plainElement(KvFormat f) {
  if (f.compressed())
    return std::nullopt;
  return static_cast<ElementType>(f.kind);
}

/// "f32", "f16", "bf16", "int8", "bfp8", "bfp4", "int4", "int2": the
/// kind's name.
std::string_view kvKindName(KvKind kind);
/// The canonical spec: "f16", "int8", "bfp4:block=16:window=8",
/// "int4:group=32:window=32" (a resolved bfp block and KIVI group and
/// window are always written; a row format's window when above 0 or when
/// its kind has another by default, "bfp4:block=16:window=0", so that the
/// name parses back to the format while int8 and bfp8 without a window
/// keep their names; int8's block is head_dim and KIVI's value block
/// follows from the group and head_dim, implied).
std::string kvFormatName(KvFormat f);

/// Reads `f32`, `f16`, `bf16`, `int8[:window=R]`, `bfp8[:block=N][:window=R]`,
/// `bfp4[:block=N][:window=R]`, `int4[:group=G][:window=R]`,
/// `int2[:group=G][:window=R]`. Options not given are left unset (block and
/// keyGroup 0, window -1 for compressed kinds). Errors name the
/// bad part: "unknown KV format 'f8' (expected f32, f16, bf16, int8, bfp8,
/// bfp4, int4 or int2)".
Expected<KvFormat> parseKvFormat(std::string_view text);

/// KIVI defaults: keys in groups of 32 tokens, a window of one group.
inline constexpr int32_t kKiviDefaultGroup = 32;
/// The largest KIVI key group: a paged block of the cache.
inline constexpr int32_t kKiviMaxGroup = 256;
/// The largest window (in tokens), KIVI's and the row formats'.
inline constexpr int32_t kKiviMaxWindow = 1 << 20;
/// bfp4's window without window=R (int8 and bfp8: 0). 8 tokens (at least;
/// 8 to 8 + 15 with the paged cache's blocks of 16) take stories15M's KL
/// from 0.081 to 0.02 (docs/benchmarks.md, "KV window of recent tokens").
inline constexpr int32_t kBfp4DefaultWindow = 8;
/// The default window of a compressed kind: KIVI's key group, bfp4's
/// kBfp4DefaultWindow, 0 for int8 and bfp8.
int32_t defaultKvWindow(KvKind kind, int32_t keyGroup = kKiviDefaultGroup);

/// The block a compressed kind gets without block=N: int8 always head_dim;
/// bfp 32, or head_dim when that is smaller, or for a head_dim above 32
/// that 32 does not divide (48, 80) the largest power of two dividing both
/// (16): blocks must tile each head exactly.
/// KIVI kinds: the value block for key group G, the largest power of two
/// <= G dividing head_dim, or head_dim itself when head_dim <= G (48 and
/// G = 32: 16; 128: 32).
int32_t defaultKvBlock(KvKind kind, int64_t headDim, int32_t keyGroup = kKiviDefaultGroup);

/// Fills in the default block and checks the format against the model's
/// head_dim: a block that does not divide head_dim, or a bfp4 block of an
/// odd number of values (not a whole number of bytes), is an Error such as
/// "block=32 does not divide head_dim 48".
/// A row format's window defaults to defaultKvWindow; above 2^20 it is an
/// Error.
/// KIVI: the group defaults to 32 and the window to the group; a group
/// outside [2, 256], a window above 2^20, a head_dim that is not a whole
/// number of bytes of codes (2 a byte for int4, 4 for int2), or a value
/// block that does not divide head_dim in whole bytes of codes, is an Error.
Expected<KvFormat> resolveKvFormat(KvFormat f, int64_t headDim);

/// Bytes of one block (compressed kinds): the header (a float32 scale or an
/// exponent byte) and the packed codes. KIVI: a value block's f16 scale
/// and zero and its codes.
size_t kvBlockBytes(KvFormat f);
/// Bytes of the header of each block: 4 (int8's scale, KIVI's f16 scale
/// and zero) or 1 (bfp's exponent).
size_t kvBlockHeaderBytes(KvFormat f);
/// Mantissa or code bits of a compressed kind: 8, 4 or 2.
int kvCodeBits(KvKind kind);
/// Bytes of a row of `width` values, scales and exponents included. KIVI:
/// a row of values (a key row has no scales of its own: kiviKeyGroupBytes).
size_t kvRowBytes(KvFormat f, int64_t width);

/// KIVI: bytes of one key group of keyGroup rows of `width` channels: per
/// channel an f16 scale, then per channel an f16 zero, then the rows' codes
/// (width * bits / 8 bytes each), the two channel codes of a byte (int4)
/// or four (int2) in its low bits first.
size_t kiviKeyGroupBytes(KvFormat f, int64_t width);
/// KIVI: quantizes `rows` (<= keyGroup) rows of keys, row-major with
/// `width` values each, into a key group (kiviKeyGroupBytes); rows past
/// `rows` are zero codes. Each channel's scale and zero come from its
/// values over those rows; a channel holding NaN or infinity decodes to
/// NaN.
void encodeKiviKeys(KvFormat f, const float *keys, int64_t rows, int64_t width, uint8_t *out);
/// KIVI: channels [first, first + out.size()) of row `row` of a key group.
void decodeKiviKey(KvFormat f, const uint8_t *group, int64_t width, int64_t row, int64_t first,
                   std::span<float> out);

/// Encodes a row of x.size() values into out (kvRowBytes bytes; KIVI: a
/// row of values). Never
/// fails: a block holding NaN or infinity is stored as a block that decodes
/// to NaN (a NaN scale, the reserved BFP exponent 255), so a diverging
/// model poisons attention as it would with an f32 cache.
void encodeKvRow(KvFormat f, std::span<const float> x, uint8_t *out);

/// Decodes values [first, first + out.size()) of a row; for compressed
/// kinds first and out.size() are multiples of the block.
void decodeKvValues(KvFormat f, const uint8_t *row, int64_t first, std::span<float> out);

} // namespace lathe::formats
