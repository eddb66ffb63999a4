// Loads the generated CPU code embedded in an artifact: checks the CPU
// supports the ISA it was built for, the ABI version and that it was
// generated from this very plan, then maps it from memory (memfd + dlopen)
// without writing a file.
#pragma once

#include "runtime/backends/cpu/native/CpuModelAbi.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <memory>
#include <string>

namespace lathe::native {

/// Whether this CPU can run code built for `isa` ("x86-64-v3", "generic").
bool hostSupports(const std::string &isa);

class NativeModel {
public:
  /// `source` names the artifact in messages.
  static Expected<std::shared_ptr<NativeModel>> load(const plan::KernelPlan &plan,
                                                     const std::string &source);
  ~NativeModel();
  NativeModel(const NativeModel &) = delete;
  NativeModel &operator=(const NativeModel &) = delete;

  LatheCpuForwardFn forward() const { return forward_; }

private:
  NativeModel() = default;
  void *handle_ = nullptr;
  int fd_ = -1;
  LatheCpuForwardFn forward_ = nullptr;
};

} // namespace lathe::native
