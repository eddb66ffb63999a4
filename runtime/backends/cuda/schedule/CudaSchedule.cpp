#include "runtime/backends/cuda/schedule/CudaSchedule.h"

namespace lathe::cuda {

Expected<std::unique_ptr<CudaSchedule>> CudaSchedule::load(const plan::KernelPlan &plan,
                                                           const std::string &source,
                                                           int32_t launches) {
  Expected<std::unique_ptr<backend::HostCode>> code = backend::HostCode::load(
      plan, source,
      {"CUDA host schedule", LATHE_CUDA_SCHEDULE_ABI_VERSION, "recompile the model on this machine",
       "lathe_cuda_schedule_"});
  if (!code)
    return code.error();
  std::unique_ptr<CudaSchedule> schedule(new CudaSchedule());
  schedule->code_ = code.take();
  using CountFn = int32_t (*)();
  const backend::HostCode &c = *schedule->code_;
  auto count = reinterpret_cast<CountFn>(c.symbol("lathe_cuda_schedule_launch_count"));
  schedule->schedule_ = reinterpret_cast<ScheduleFn>(c.symbol("lathe_cuda_schedule"));
  if (!count || !schedule->schedule_)
    return Error(c.lacksEntryPoints());
  if (count() != launches)
    return Error(source + ": corrupt: its CUDA host schedule and its GPU code differ in launches");
  return schedule;
}

} // namespace lathe::cuda
