#include "runtime/backends/cpu/native/NativeModel.h"

namespace lathe::native {

Expected<std::shared_ptr<NativeModel>> NativeModel::load(const plan::KernelPlan &plan,
                                                          const std::string &source) {
  Expected<std::unique_ptr<backend::HostCode>> code = backend::HostCode::load(
      plan, source,
      {"CPU code", LATHE_CPU_ABI_VERSION,
       "recompile the model on this machine, or run with --no-native-code"});
  if (!code)
    return code.error();
  std::shared_ptr<NativeModel> model(new NativeModel());
  model->code_ = code.take();
  auto abi = reinterpret_cast<LatheCpuAbiVersionFn>(model->code_->symbol("lathe_cpu_abi_version"));
  auto hash = reinterpret_cast<LatheCpuPlanHashFn>(model->code_->symbol("lathe_cpu_plan_hash"));
  model->forward_ = reinterpret_cast<LatheCpuForwardFn>(model->code_->symbol("lathe_cpu_forward"));
  if (!abi || !hash || !model->forward_)
    return Error(source + ": corrupt: its CPU code lacks the lathe_cpu_* entry points");
  if (abi() != LATHE_CPU_ABI_VERSION || hash() != plan.native->planHash)
    return Error(source + ": corrupt: its CPU code does not match its own description");
  return model;
}

} // namespace lathe::native
