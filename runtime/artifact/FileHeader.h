// The fixed 64-byte header at the start of every .lathe file. It locates the
// flatbuffer description and the weight section and carries a checksum of
// each, so that a truncated or corrupted artifact is refused at load time
// instead of producing garbage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace lathe::artifact {

inline constexpr char kMagic[8] = {'L', 'A', 'T', 'H', 'E', 'A', 'R', 'T'};
/// 2: steps in the generic form of runtime/plan/StepCodec.h. 3: rope steps
/// carry Llama 3 frequency scaling; bias_add steps. 4: schedules carry a KV
/// format (kv_kind, kv_block) that may be compressed, which a version-3
/// runtime would ignore and read as garbage. 5: KIVI KV formats (int4,
/// int2) with their key group and window (kv_key_group, kv_window); int8
/// and bfp formats may carry a window too (kv_window, 0 in files written
/// before: no window, so those load unchanged; a runtime from before reads
/// a windowed one as a format that does not fit the model and refuses it).
/// 6: attention steps carry their queries' precision (activations).
inline constexpr uint32_t kFormatVersion = 6;
inline constexpr uint64_t kSectionAlignment = 64;

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t headerSize;           // sizeof(FileHeader)
  uint64_t descriptionOffset;    // flatbuffer
  uint64_t descriptionSize;
  uint64_t dataOffset;           // weight section, 64-byte aligned
  uint64_t dataSize;
  uint64_t descriptionChecksum;
  uint64_t dataChecksum;
};
static_assert(sizeof(FileHeader) == 64, "the header layout is part of the format");

/// A fast 64-bit checksum (four independent multiply-rotate lanes over
/// 8-byte words, so it runs near memory speed). Not cryptographic: it guards
/// against truncation and bit rot, not against tampering.
uint64_t checksum(std::span<const uint8_t> bytes);

inline uint64_t alignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

} // namespace lathe::artifact
