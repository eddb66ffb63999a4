#include "codegen/CPU/NativeBuild.h"

#include "codegen/CPU/GeneratedCodeHeaders.h"
#include "runtime/backends/cpu/native/CpuModelAbi.h"

#include "llvm/Support/Program.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <cstdlib>

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

} // namespace

std::string nativeIsaForHost() {
  llvm::Triple triple(llvm::sys::getProcessTriple());
  return triple.getArch() == llvm::Triple::x86_64 ? "x86-64-v3" : "generic";
}

Expected<plan::NativeCode> buildSharedObject(const std::string &source, uint64_t planHash,
                                             const NativeBuildSpec &spec) {
  std::string compiler = findCompiler();
  if (compiler.empty())
    return Error(std::getenv("CXX")
                     ? spec.target + ": CXX=" + std::getenv("CXX") +
                           " is not an executable on PATH"
                     : spec.target + " builds " + spec.what +
                           " with a C++ compiler, and none was found (install g++, or set CXX)");
  Expected<BuildFolder> dir = BuildFolder::create("lathe-native");
  if (!dir)
    return dir.error();
  const std::string src = dir->file("model.cpp"), object = dir->file("model.so");
  if (Status s = dir->write("model.cpp", source); !s)
    return s.error();
  // The headers the source includes, beside it at the paths it names.
  if (Status s = dir->writeHeaders(spec.headers); !s)
    return s.error();
  std::string isa = spec.hostIsa ? nativeIsaForHost() : "generic";
  std::vector<std::string> args = {compiler, "-std=c++17", "-O2", "-fPIC", "-shared",
                                   "-fvisibility=hidden", "-fno-math-errno",
                                   // no fused multiply-adds (GCC's default): the
                                   // reference kernels round every product
                                   "-ffp-contract=off"};
  if (isa != "generic")
    args.push_back("-march=" + isa);
  args.insert(args.end(), {"-I", dir->path(), "-o", object, src});
  if (Status s = runBuildTool(compiler, args, dir->file("compiler.log"), "building " + spec.what);
      !s)
    return s.error();
  Expected<std::vector<uint8_t>> built = readBuildOutput(object);
  if (!built)
    return built.error();
  plan::NativeCode code;
  code.isa = isa;
  code.abiVersion = spec.abiVersion;
  code.planHash = planHash;
  code.object = built.take();
  return code;
}

Expected<plan::NativeCode> buildNativeCode(const std::string &source, uint64_t planHash) {
  return buildSharedObject(source, planHash,
                           {"--target=cpu", "the model's CPU code", kGeneratedCodeHeaders,
                            LATHE_CPU_ABI_VERSION, /*hostIsa=*/true});
}

} // namespace lathe::codegen
