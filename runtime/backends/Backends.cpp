#include "runtime/backends/Backends.h"

#include "runtime/backends/cpu/CpuExecutable.h"

#include <fmt/format.h>

namespace lathe::backends {

Expected<std::shared_ptr<backend::Executable>>
loadExecutable(std::shared_ptr<const artifact::Artifact> artifact,
               const backend::ExecutionOptions &options) {
  if (options.target == "cpu")
    return cpu::CpuExecutable::load(std::move(artifact), options);
  return Error(fmt::format("this runtime has no backend for target '{}' (it runs: cpu)",
                           options.target));
}

} // namespace lathe::backends
