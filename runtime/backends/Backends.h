// The backends this runtime was built with: the one place that names them.
// backend::load (runtime/backend/Executable.h) picks one by target.
#pragma once

#include "runtime/backend/Executable.h"

namespace lathe::backends {

/// Loads `artifact`'s plan for `options.target` on the backend of that
/// target; a target without a backend is one clear error.
Expected<std::shared_ptr<backend::Executable>>
loadExecutable(std::shared_ptr<const artifact::Artifact> artifact,
               const backend::ExecutionOptions &options);

} // namespace lathe::backends
