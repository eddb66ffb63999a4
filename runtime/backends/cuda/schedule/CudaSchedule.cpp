#include "runtime/backends/cuda/schedule/CudaSchedule.h"

namespace lathe::cuda {

Expected<std::unique_ptr<CudaSchedule>> CudaSchedule::load(const plan::KernelPlan &plan,
                                                           const std::string &source,
                                                           int32_t launches) {
  Expected<std::unique_ptr<backend::HostCode>> code = backend::HostCode::load(
      plan, source,
      {"CUDA host schedule", LATHE_CUDA_SCHEDULE_ABI_VERSION, "recompile the model on this machine"});
  if (!code)
    return code.error();
  std::unique_ptr<CudaSchedule> schedule(new CudaSchedule());
  schedule->code_ = code.take();
  using AbiFn = uint32_t (*)();
  using HashFn = uint64_t (*)();
  using CountFn = int32_t (*)();
  const backend::HostCode &c = *schedule->code_;
  auto abi = reinterpret_cast<AbiFn>(c.symbol("lathe_cuda_schedule_abi_version"));
  auto hash = reinterpret_cast<HashFn>(c.symbol("lathe_cuda_schedule_plan_hash"));
  auto count = reinterpret_cast<CountFn>(c.symbol("lathe_cuda_schedule_launch_count"));
  schedule->schedule_ = reinterpret_cast<ScheduleFn>(c.symbol("lathe_cuda_schedule"));
  if (!abi || !hash || !count || !schedule->schedule_)
    return Error(source + ": corrupt: its CUDA host schedule lacks the lathe_cuda_schedule* "
                          "entry points");
  if (abi() != LATHE_CUDA_SCHEDULE_ABI_VERSION || hash() != plan.native->planHash)
    return Error(source + ": corrupt: its CUDA host schedule does not match its own description");
  if (count() != launches)
    return Error(source + ": corrupt: its CUDA host schedule and its GPU code differ in launches");
  return schedule;
}

} // namespace lathe::cuda
