// A read-only memory map of a whole file. Model weights and artifacts are
// read through this so that large files are never copied into memory.
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace lathe {

class MappedFile {
public:
  /// Maps `path` read-only. Fails with a message naming the path when the
  /// file cannot be opened or mapped. An empty file maps to an empty span.
  static Expected<std::shared_ptr<MappedFile>> open(const std::string &path);

  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::string &path() const { return path_; }

private:
  MappedFile(std::string path, const uint8_t *data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t *data_;
  size_t size_;
};

/// The whole file as a string (calibration text, perplexity corpora), with
/// the same messages as MappedFile::open.
Expected<std::string> readTextFile(const std::string &path);

} // namespace lathe
