#include "codegen/CUDA/NvccBuild.h"

#include "codegen/CUDA/EmitCudaModel.h"
#include "codegen/Support/BuildTools.h"
#include "runtime/backends/cuda/kernels/CudaFrame.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"

#include <cstdlib>
#include <regex>

namespace lathe::codegen {
namespace {

/// nvcc, or "" with `looked` saying where it was looked for.
std::string findNvcc(std::string &looked) {
  if (const char *home = std::getenv("CUDA_HOME"); home && *home) {
    looked = std::string(home) + "/bin (CUDA_HOME)";
    const std::string path = std::string(home) + "/bin/nvcc";
    return llvm::sys::fs::can_execute(path) ? path : "";
  }
  if (llvm::sys::fs::can_execute("/usr/local/cuda/bin/nvcc"))
    return "/usr/local/cuda/bin/nvcc";
  looked = "/usr/local/cuda/bin and PATH";
  if (auto path = llvm::sys::findProgramByName("nvcc"))
    return *path;
  return "";
}

} // namespace

Expected<std::vector<std::string>> parseCudaTarget(const std::string &target) {
  if (target == "cuda")
    return std::vector<std::string>{"sm_90a"};
  if (target.rfind("cuda:", 0) != 0)
    return Error("--target=" + target + ": expected cpu, cuda or cuda:ARCH[,ARCH...]");
  std::vector<std::string> archs;
  const std::regex arch("sm_[1-9][0-9]+a?");
  std::string list = target.substr(5);
  size_t start = 0;
  while (true) {
    const size_t comma = list.find(',', start);
    const std::string item = list.substr(start, comma - start);
    if (!std::regex_match(item, arch))
      return Error("--target=" + target + ": '" + item +
                   "' is not a CUDA architecture (expected sm_NN or sm_NNa, e.g. sm_90a)");
    // The tensor-core products use bf16 mma.sync, which sm_80 introduced.
    if (std::stoi(item.substr(3, item.size() - 3 - (item.back() == 'a'))) < 80)
      return Error("--target=" + target + ": '" + item +
                   "' is older than sm_80, the first architecture Lathe's CUDA kernels run on");
    archs.push_back(item);
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return archs;
}

Expected<plan::DeviceCode> buildCudaCode(const std::string &source,
                                         const std::vector<std::string> &archs,
                                         uint64_t planHash) {
  std::string looked;
  const std::string nvcc = findNvcc(looked);
  if (nvcc.empty())
    return Error("--target=cuda builds the model's code with nvcc, and none was found in " +
                 looked + " (install the CUDA toolkit, or set CUDA_HOME)");
  Expected<BuildFolder> dir = BuildFolder::create("lathe-cuda");
  if (!dir)
    return dir.error();
  if (Status s = dir->write("model.cu", source); !s)
    return s.error();
  if (Status s = dir->writeHeaders(cudaCodeHeaders()); !s)
    return s.error();
  // Machine code for every architecture, and PTX of the first, which a
  // newer GPU's driver compiles at load time.
  // --threads 0: the architectures' machine code and the PTX compiled in
  // parallel, on as many threads as the machine has (the Llama-3.2-1B
  // shape in FP6 4+2 on the 2-core machine: 163 s -> 129 s);
  // --split-compile 0: one architecture's module split over them too (its
  // INT4 build 90 -> 66 s, bf16 46 -> 20 s; decode and prefill within
  // the noise of the same H200 call, 2026-12-03).
  std::vector<std::string> args = {nvcc,        "-fatbin",         "-O3", "-std=c++17",
                                   "--threads", "0", "--split-compile", "0"};
  for (const std::string &arch : archs) {
    const std::string compute = "compute_" + arch.substr(3);
    args.push_back("-gencode=arch=" + compute + ",code=" + arch);
  }
  // The PTX of the plain architecture ("compute_90", not "compute_90a"):
  // architecture-specific PTX runs only on that very architecture, and the
  // kernels use none of its features.
  std::string firstCompute = "compute_" + archs.front().substr(3);
  if (firstCompute.back() == 'a')
    firstCompute.pop_back();
  args.push_back("-gencode=arch=" + firstCompute + ",code=" + firstCompute);
  // Extra nvcc arguments for experiments (say -lineinfo for Nsight
  // Compute), split at spaces.
  if (const char *extra = std::getenv("LATHE_NVCC_FLAGS"); extra && *extra) {
    std::string flags = extra;
    for (size_t start = 0; start < flags.size();) {
      const size_t space = flags.find(' ', start);
      const size_t end = space == std::string::npos ? flags.size() : space;
      if (end > start)
        args.push_back(flags.substr(start, end - start));
      start = end + 1;
    }
  }
  const std::string image = dir->file("model.fatbin");
  args.insert(args.end(), {"-I", dir->path(), "-o", image, dir->file("model.cu")});
  if (Status s = runBuildTool(nvcc, args, dir->file("nvcc.log"), "building the model's CUDA code");
      !s)
    return s.error();
  Expected<std::vector<uint8_t>> built = readBuildOutput(image);
  if (!built)
    return built.error();
  plan::DeviceCode code;
  for (const std::string &arch : archs)
    code.archs += (code.archs.empty() ? "" : ",") + arch;
  code.abiVersion = LATHE_CUDA_ABI_VERSION;
  code.planHash = planHash;
  code.image = built.take();
  return code;
}

} // namespace lathe::codegen
