// A parameter file: the weights of an artifact compiled with
// --external-weights, kept beside it (as IREE keeps .irpa parameters beside
// a .vmfb), so that the code artifact stays small and the weights can be
// packed on the machine that runs them (lathe-pack) from a checkpoint that
// never passes through the compiler's machine. docs/artifact.md:
//
//   [0, 64)          ParameterHeader (magic, version, the artifact's
//                    parameter id, the data section's place and checksum)
//   [dataOffset, +)  the data section: exactly the weight section the
//                    artifact would hold, each tensor at the offset the
//                    artifact's tensor table gives (64-byte aligned)
//
// The parameter id is a checksum of the artifact's tensor table (names,
// element types, shapes, formats, offsets, sizes): a file fits every
// artifact with that table (cpu and cuda builds of one model share one).
// Where the compiler changed the weights (equalized or reordered channels:
// the artifact's code may depend on them, as a KV cache's key order does),
// the id also covers every tensor's bytes (boundParameterId), so a file of
// another calibration or fine-tune is refused too.
#pragma once

#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"
#include "runtime/support/MappedFile.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace lathe::artifact {

inline constexpr char kParameterMagic[8] = {'L', 'A', 'T', 'H', 'E', 'P', 'R', 'M'};
/// 1: the first layout.
inline constexpr uint32_t kParameterVersion = 1;

struct ParameterHeader {
  char magic[8];
  uint32_t version;
  uint32_t headerSize;     // sizeof(ParameterHeader)
  uint64_t parameterId;    // parameterId() of the artifact's tensor table
  uint64_t dataOffset;     // 64-byte aligned
  uint64_t dataSize;
  uint64_t dataChecksum;   // artifact::checksum of the data section
  uint64_t reserved[2];    // zero
};
static_assert(sizeof(ParameterHeader) == 64, "the header layout is part of the format");

/// The weight section's layout for tensors of these sizes: each one 64-byte
/// aligned, in order. Sets *sectionSize (a multiple of 64).
std::vector<uint64_t> layoutWeights(std::span<const plan::TensorInfo> tensors,
                                    uint64_t *sectionSize);

/// The id that binds a parameter file to the artifacts whose tensor table
/// (`tensors` at `offsets`) it holds.
uint64_t parameterId(std::span<const plan::TensorInfo> tensors,
                     std::span<const uint64_t> offsets);

/// The id of a table whose weights the compiler changed: `tableId` and a
/// checksum of each tensor's bytes, in order.
uint64_t boundParameterId(uint64_t tableId, std::span<const std::span<const uint8_t>> tensors);

/// `artifact` with its extension replaced by ".params" ("model.lathe" ->
/// "model.params"): where lathe-compile and lathe-pack write the parameter
/// file, and where the runtime looks for it unless told.
std::string defaultParameterPath(const std::string &artifact);

/// A mapped parameter file whose header and checksum were checked.
struct ParameterFile {
  std::shared_ptr<MappedFile> file;
  std::span<const uint8_t> data; // the data section
};

/// Maps `path` and checks it against what the artifact expects: the magic
/// number, the version, the header, the sizes, the parameter id and the
/// data's checksum. Errors are one line naming the file.
Expected<ParameterFile> openParameterFile(const std::string &path, FileMemory memory,
                                          uint64_t id, uint64_t dataSize);

/// Writes a parameter file of `dataSize` bytes of data through a temporary
/// file beside `path`: `fill` writes the data section in place (zeroed
/// when it is called; padding must stay zero), then the checksum and the
/// header are written and the file is renamed to `path`. A failed fill or
/// write leaves nothing behind.
Status writeParameterFile(const std::string &path, uint64_t id, uint64_t dataSize,
                          const std::function<Status(std::span<uint8_t>)> &fill);

} // namespace lathe::artifact
