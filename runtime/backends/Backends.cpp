#include "runtime/backends/Backends.h"

#include "runtime/backends/cpu/CpuExecutable.h"
#include "runtime/backends/cuda/CudaExecutable.h"

#include <fmt/format.h>

namespace lathe::backends {

Expected<std::shared_ptr<backend::Executable>>
loadExecutable(std::shared_ptr<const artifact::Artifact> artifact,
               const backend::ExecutionOptions &options) {
  if (!artifact->weightsLoaded())
    return Error(artifact->path() + ": loaded without its weights (its description only), "
                                    "which nothing can run");
  if (options.target == "cpu")
    return cpu::CpuExecutable::load(std::move(artifact), options);
  if (options.target == "cuda") {
    // The reference kernels are the CPU's: they run any target's plan, and
    // every GPU kernel is tested against them.
    if (options.kernels == backend::KernelPath::Reference)
      return cpu::CpuExecutable::load(std::move(artifact), options);
    return cuda::CudaExecutable::load(std::move(artifact), options);
  }
  return Error(fmt::format("this runtime has no backend for target '{}' (it runs: cpu, cuda)",
                           options.target));
}

} // namespace lathe::backends
