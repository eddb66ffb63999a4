// Generated host code embedded in an artifact (plan::NativeCode: the CPU
// target's step, the CUDA target's host schedule), mapped from memory
// (memfd + dlopen) without writing a file, after checking that this CPU
// supports the ISA it was built for, that it was built against the ABI the
// runtime speaks and generated from this very plan. Each backend resolves
// its own entry points.
#pragma once

#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <memory>
#include <string>

namespace lathe::backend {

/// Whether this CPU can run code built for `isa` ("x86-64-v3", "generic").
bool hostSupports(const std::string &isa);

class HostCode {
public:
  /// What a backend expects of its code: how messages name it ("CPU code"),
  /// the ABI version it speaks, what to advise where this CPU lacks its
  /// ISA, and the prefix of its entry points ("lathe_cpu_"), among them
  /// PREFIXabi_version() and PREFIXplan_hash(), by which the loaded code
  /// describes itself.
  struct Expectation {
    std::string what;
    uint32_t abiVersion;
    std::string isaAdvice;
    std::string prefix;
  };
  /// Maps `plan.native` and checks its own description against the
  /// artifact's. `source` names the artifact in messages, each one line:
  /// "SOURCE: its CPU code ...".
  static Expected<std::unique_ptr<HostCode>> load(const plan::KernelPlan &plan,
                                                  const std::string &source,
                                                  const Expectation &expect);
  ~HostCode();
  HostCode(const HostCode &) = delete;
  HostCode &operator=(const HostCode &) = delete;

  /// The exported symbol `name`, or null.
  void *symbol(const char *name) const;
  /// The message of code that lacks an entry point it must export.
  std::string lacksEntryPoints() const;

private:
  HostCode() = default;
  std::string source_, what_, prefix_;
  void *handle_ = nullptr;
  int fd_ = -1;
};

} // namespace lathe::backend
