// Turns a fuzz input into the files a loader opens: most loaders take a
// path (lathe-compile and lathe-run hand them what the user named), so a
// target writes its bytes into a scratch folder and calls the loader on
// that, the same entry point the tools use.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lathe::fuzz {

/// A folder of this process's own under /dev/shm (memory, so millions of
/// writes cost no disk) or the temporary directory, removed at exit.
class ScratchFolder {
public:
  ScratchFolder() {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm")
                                                     : fs::temp_directory_path();
    std::string pattern = (base / "lathe-fuzz-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) {
      std::perror("lathe fuzz: cannot create a scratch folder");
      std::abort();
    }
    path_ = pattern;
  }
  ~ScratchFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchFolder(const ScratchFolder &) = delete;
  ScratchFolder &operator=(const ScratchFolder &) = delete;

  const std::string &path() const { return path_; }

  /// Writes `bytes` to the file `name` in the folder (replacing it) and
  /// returns its path. Failing to write is the harness's fault, not the
  /// loader's, so it aborts with a message that says so.
  std::string write(std::string_view name, std::span<const uint8_t> bytes) const {
    std::string file = path_ + "/" + std::string(name);
    std::FILE *f = std::fopen(file.c_str(), "wb");
    if (!f || (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) ||
        std::fclose(f) != 0) {
      std::perror(("lathe fuzz: cannot write " + file).c_str());
      std::abort();
    }
    return file;
  }

  /// Removes the file `name` if it is there.
  void remove(std::string_view name) const {
    std::error_code ec;
    std::filesystem::remove(path_ + "/" + std::string(name), ec);
  }

private:
  std::string path_;
};

/// The scratch folder of this process (one per fuzzer).
inline const ScratchFolder &scratch() {
  static const ScratchFolder folder;
  return folder;
}

/// An input that holds a JSON file and optionally a second file after it.
struct JsonAndFile {
  std::span<const uint8_t> json;
  std::optional<std::span<const uint8_t>> file;
};

/// Splits an input at its first NUL byte: a JSON text cannot contain one,
/// so "config.json NUL model.safetensors" needs no length field that
/// mutations would break. Without a NUL there is no second file.
inline JsonAndFile splitAtFirstNul(std::span<const uint8_t> bytes) {
  for (size_t i = 0; i < bytes.size(); ++i)
    if (bytes[i] == 0)
      return {bytes.first(i), bytes.subspan(i + 1)};
  return {bytes, std::nullopt};
}

} // namespace lathe::fuzz
