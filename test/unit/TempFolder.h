// A folder of the test process's own under the temporary directory, for
// the files its tests write: created on first use and removed, with
// everything in it, when the process's tests end (a gtest environment,
// registered as the object is constructed: declare it at namespace scope,
// before RUN_ALL_TESTS), so no run leaves files behind.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <unistd.h>

namespace lathe::test {

class TempFolder {
public:
  /// <temp>/lathe-<what>-<pid>.
  explicit TempFolder(const std::string &what)
      : path_(std::filesystem::temp_directory_path() /
              ("lathe-" + what + "-" + std::to_string(::getpid()))) {
    ::testing::AddGlobalTestEnvironment(new Removal(path_));
  }

  const std::filesystem::path &path() const { return path_; }
  /// The path of file `name` in the folder, which exists from then on.
  std::string file(const std::string &name) const {
    std::filesystem::create_directories(path_);
    return (path_ / name).string();
  }

private:
  struct Removal : ::testing::Environment {
    explicit Removal(std::filesystem::path p) : path(std::move(p)) {}
    void TearDown() override {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
    std::filesystem::path path;
  };
  std::filesystem::path path_;
};

} // namespace lathe::test
