// The host schedule of a CUDA artifact (CudaScheduleAbi.h), loaded from the
// artifact's native code (backend::HostCode) and checked against the GPU
// code it schedules.
#pragma once

#include "runtime/backend/HostCode.h"
#include "runtime/backends/cuda/schedule/CudaScheduleAbi.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <memory>
#include <string>

namespace lathe::cuda {

class CudaSchedule {
public:
  /// The schedule of `plan`, whose GPU code has `launches` launches.
  /// `source` names the artifact in messages.
  static Expected<std::unique_ptr<CudaSchedule>> load(const plan::KernelPlan &plan,
                                                      const std::string &source,
                                                      int32_t launches);

  /// Hands the step's launches to `launcher`, in order, until one fails.
  void run(const LatheCudaStepFacts &step, LatheCudaLauncher &launcher) const {
    schedule_(&step, &launcher);
  }

private:
  using ScheduleFn = void (*)(const LatheCudaStepFacts *, LatheCudaLauncher *);
  CudaSchedule() = default;
  std::unique_ptr<backend::HostCode> code_;
  ScheduleFn schedule_ = nullptr;
};

} // namespace lathe::cuda
