// Reader and writer for the safetensors format (huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
//    "__metadata__": {"key": "value"}}
// and then the data area that the offsets index into. Only F32, F16 and
// BF16 tensors are read; a file with any other dtype is rejected.
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lathe::frontend {

/// One mapped .safetensors file. Every tensor's offsets and size were checked
/// against the file when it was opened, so its views can be read directly.
/// Views are not necessarily aligned to their element size.
class SafetensorsFile {
public:
  /// Maps and parses `path`; any malformed header, unsupported dtype, or
  /// tensor that does not fit the data area is an Error naming the file.
  static Expected<SafetensorsFile> open(const std::string &path);

  /// The tensor called `name`, or nullopt.
  std::optional<TensorView> lookup(std::string_view name) const;

  /// All tensors, by name.
  const std::map<std::string, TensorView, std::less<>> &tensors() const {
    return tensors_;
  }
  /// The "__metadata__" entries (empty when the file has none).
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }
  const std::string &path() const { return path_; }
  /// Keeps the bytes behind every view alive.
  const std::shared_ptr<MappedFile> &storage() const { return file_; }

private:
  SafetensorsFile() = default;

  std::string path_;
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorView, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// Writes `tensors` (in the given order, packed back to back) to `path`.
/// The header is padded with spaces to a multiple of 8 bytes, as the
/// reference implementation does. Fails on duplicate or reserved names and
/// on views whose byte count does not match their shape.
Status writeSafetensors(
    const std::string &path,
    const std::vector<std::pair<std::string, TensorView>> &tensors,
    const std::map<std::string, std::string> &metadata = {});

} // namespace lathe::frontend
