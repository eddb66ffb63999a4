#include "codegen/CPU/NativeBuild.h"

#include "codegen/CPU/GeneratedCodeHeaders.h"
#include "runtime/backends/cpu/native/CpuModelAbi.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <cstdlib>
#include <fstream>

namespace lathe::codegen {
namespace {

std::string findCompiler() {
  if (const char *cxx = std::getenv("CXX"); cxx && *cxx) {
    if (auto path = llvm::sys::findProgramByName(cxx))
      return *path;
    return "";
  }
  for (const char *name : {"c++", "g++", "clang++"})
    if (auto path = llvm::sys::findProgramByName(name))
      return *path;
  return "";
}

/// Removes the temporary folder and what is in it.
struct TempDir {
  llvm::SmallString<128> path;
  ~TempDir() {
    if (!path.empty())
      llvm::sys::fs::remove_directories(path);
  }
};

} // namespace

std::string nativeIsaForHost() {
  llvm::Triple triple(llvm::sys::getProcessTriple());
  return triple.getArch() == llvm::Triple::x86_64 ? "x86-64-v3" : "generic";
}

Expected<plan::NativeCode> buildNativeCode(const std::string &source, uint64_t planHash) {
  std::string compiler = findCompiler();
  if (compiler.empty())
    return Error(std::getenv("CXX")
                     ? std::string("--target=cpu: CXX=") + std::getenv("CXX") +
                           " is not an executable on PATH"
                     : "--target=cpu builds the model's code with a C++ compiler, and "
                       "none was found (install g++, or set CXX)");
  TempDir dir;
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory("lathe-cpu", dir.path))
    return Error("cannot create a temporary folder: " + ec.message());
  std::string src = (dir.path + "/model.cpp").str(), object = (dir.path + "/model.so").str(),
              log = (dir.path + "/compiler.log").str();
  {
    std::ofstream out(src);
    out << source;
    if (!out.flush())
      return Error("cannot write " + src);
  }
  // The headers the source includes, beside it at the paths it names.
  for (const HeaderText &header : kGeneratedCodeHeaders) {
    llvm::SmallString<128> path(dir.path);
    llvm::sys::path::append(path, header.path);
    if (std::error_code ec = llvm::sys::fs::create_directories(llvm::sys::path::parent_path(path)))
      return Error("cannot create a temporary folder: " + ec.message());
    std::ofstream out(path.str().str());
    out << header.text;
    if (!out.flush())
      return Error("cannot write " + path.str().str());
  }
  std::string isa = nativeIsaForHost();
  std::vector<std::string> args = {compiler, "-std=c++17", "-O2", "-fPIC", "-shared",
                                   "-fvisibility=hidden", "-fno-math-errno"};
  if (isa != "generic")
    args.push_back("-march=" + isa);
  args.insert(args.end(), {"-I", dir.path.str().str(), "-o", object, src});
  std::vector<llvm::StringRef> argv(args.begin(), args.end());
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(log),
                                                llvm::StringRef(log)};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(compiler, argv, std::nullopt, redirects, 0, 0, &message);
  if (rc != 0) {
    std::string first;
    if (auto buffer = llvm::MemoryBuffer::getFile(log)) {
      llvm::StringRef text = (*buffer)->getBuffer();
      // The first line that says "error", else the first line.
      size_t at = text.find("error");
      llvm::StringRef line = at == llvm::StringRef::npos ? text : text.substr(text.rfind('\n', at) + 1);
      first = line.take_until([](char c) { return c == '\n'; }).str();
    }
    return Error("building the model's CPU code with " + compiler + " failed" +
                 (message.empty() ? "" : " (" + message + ")") +
                 (first.empty() ? "" : ": " + first));
  }
  auto buffer = llvm::MemoryBuffer::getFile(object);
  if (!buffer)
    return Error("cannot read the built " + object);
  plan::NativeCode code;
  code.isa = isa;
  code.abiVersion = LATHE_CPU_ABI_VERSION;
  code.planHash = planHash;
  llvm::StringRef bytes = (*buffer)->getBuffer();
  code.object.assign(bytes.begin(), bytes.end());
  return code;
}

} // namespace lathe::codegen
