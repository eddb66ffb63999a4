#include "runtime/backends/cpu/native/NativeModel.h"

namespace lathe::native {

Expected<std::shared_ptr<NativeModel>> NativeModel::load(const plan::KernelPlan &plan,
                                                          const std::string &source) {
  Expected<std::unique_ptr<backend::HostCode>> code = backend::HostCode::load(
      plan, source,
      {"CPU code", LATHE_CPU_ABI_VERSION,
       "recompile the model on this machine, or run with --no-native-code", "lathe_cpu_"});
  if (!code)
    return code.error();
  std::shared_ptr<NativeModel> model(new NativeModel());
  model->code_ = code.take();
  model->forward_ = reinterpret_cast<LatheCpuForwardFn>(model->code_->symbol("lathe_cpu_forward"));
  if (!model->forward_)
    return Error(model->code_->lacksEntryPoints());
  return model;
}

} // namespace lathe::native
