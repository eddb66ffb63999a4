// Loads the generated CPU code embedded in an artifact (backend::HostCode:
// the ISA, the ABI version and the plan it was generated from checked) and
// resolves its entry points.
#pragma once

#include "runtime/backend/HostCode.h"
#include "runtime/backends/cpu/native/CpuModelAbi.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <memory>
#include <string>

namespace lathe::native {

class NativeModel {
public:
  /// `source` names the artifact in messages.
  static Expected<std::shared_ptr<NativeModel>> load(const plan::KernelPlan &plan,
                                                     const std::string &source);

  LatheCpuForwardFn forward() const { return forward_; }

private:
  NativeModel() = default;
  std::unique_ptr<backend::HostCode> code_;
  LatheCpuForwardFn forward_ = nullptr;
};

} // namespace lathe::native
