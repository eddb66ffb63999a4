#include "codegen/Support/BuildTools.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <fstream>
#include <optional>

namespace lathe::codegen {

Expected<BuildFolder> BuildFolder::create(const std::string &prefix) {
  BuildFolder folder;
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory(prefix, folder.path_))
    return Error("cannot create a temporary folder: " + ec.message());
  return folder;
}

BuildFolder::~BuildFolder() {
  if (!path_.empty())
    llvm::sys::fs::remove_directories(path_);
}

std::string BuildFolder::file(const std::string &name) const {
  llvm::SmallString<128> path(path_);
  llvm::sys::path::append(path, name);
  return path.str().str();
}

Status BuildFolder::write(const std::string &name, const std::string &text) const {
  const std::string path = file(name);
  if (std::error_code ec =
          llvm::sys::fs::create_directories(llvm::sys::path::parent_path(path)))
    return Error("cannot create a temporary folder: " + ec.message());
  std::ofstream out(path);
  out << text;
  if (!out.flush())
    return Error("cannot write " + path);
  return Status::ok();
}

Status BuildFolder::writeHeaders(std::span<const HeaderText> headers) const {
  for (const HeaderText &header : headers)
    if (Status s = write(header.path, header.text); !s)
      return s;
  return Status::ok();
}

Status runBuildTool(const std::string &program, const std::vector<std::string> &args,
                    const std::string &log, const std::string &what) {
  std::vector<llvm::StringRef> argv(args.begin(), args.end());
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(log),
                                                llvm::StringRef(log)};
  std::string message;
  const int rc = llvm::sys::ExecuteAndWait(program, argv, std::nullopt, redirects, 0, 0, &message);
  if (rc == 0)
    return Status::ok();
  std::string first;
  if (auto buffer = llvm::MemoryBuffer::getFile(log)) {
    llvm::StringRef text = (*buffer)->getBuffer();
    // The first line that says "error", else the first line.
    size_t at = text.find("error");
    llvm::StringRef line =
        at == llvm::StringRef::npos ? text : text.substr(text.rfind('\n', at) + 1);
    first = line.take_until([](char c) { return c == '\n'; }).str();
  }
  return Error(what + " with " + program + " failed" +
               (message.empty() ? "" : " (" + message + ")") +
               (first.empty() ? "" : ": " + first));
}

Expected<std::vector<uint8_t>> readBuildOutput(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return Error("cannot read the built " + path);
  llvm::StringRef bytes = (*buffer)->getBuffer();
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

} // namespace lathe::codegen
