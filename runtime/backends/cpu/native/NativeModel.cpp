#include "runtime/backends/cpu/native/NativeModel.h"

#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

namespace lathe::native {

bool hostSupports(const std::string &isa) {
  if (isa == "generic")
    return true;
#if defined(__x86_64__)
  if (isa == "x86-64-v3") {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c");
  }
#endif
  return false;
}

Expected<std::shared_ptr<NativeModel>> NativeModel::load(const plan::KernelPlan &plan,
                                                          const std::string &source) {
  const plan::NativeCode &code = *plan.native;
  auto fail = [&](const std::string &what) { return Error(source + ": " + what); };
  if (!hostSupports(code.isa))
    return fail(fmt::format("its CPU code was built for {}, which this CPU does not "
                            "support; recompile the model on this machine, or run "
                            "with --no-native-code",
                            code.isa));
  if (code.abiVersion != LATHE_CPU_ABI_VERSION)
    return fail(fmt::format("its CPU code uses ABI version {}, this runtime version {}; "
                            "recompile the model",
                            code.abiVersion, LATHE_CPU_ABI_VERSION));
  if (code.planHash != plan::planHash(plan))
    return fail("corrupt: its CPU code was generated for another kernel plan");
  static const uint8_t kElf[4] = {0x7f, 'E', 'L', 'F'};
  if (code.object.size() < 64 || std::memcmp(code.object.data(), kElf, 4) != 0)
    return fail("corrupt: its CPU code is not a shared object");

  std::shared_ptr<NativeModel> model(new NativeModel());
  model->fd_ = memfd_create("lathe-model", MFD_CLOEXEC);
  if (model->fd_ < 0)
    return fail(std::string("cannot map its CPU code: memfd_create: ") + std::strerror(errno));
  size_t written = 0;
  while (written < code.object.size()) {
    ssize_t n = ::write(model->fd_, code.object.data() + written, code.object.size() - written);
    if (n <= 0)
      return fail(std::string("cannot map its CPU code: ") + std::strerror(errno));
    written += static_cast<size_t>(n);
  }
  std::string path = fmt::format("/proc/self/fd/{}", model->fd_);
  model->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!model->handle_)
    return fail(std::string("cannot load its CPU code: ") + dlerror());
  auto abi = reinterpret_cast<LatheCpuAbiVersionFn>(dlsym(model->handle_, "lathe_cpu_abi_version"));
  auto hash = reinterpret_cast<LatheCpuPlanHashFn>(dlsym(model->handle_, "lathe_cpu_plan_hash"));
  model->forward_ = reinterpret_cast<LatheCpuForwardFn>(dlsym(model->handle_, "lathe_cpu_forward"));
  if (!abi || !hash || !model->forward_)
    return fail("corrupt: its CPU code lacks the lathe_cpu_* entry points");
  if (abi() != LATHE_CPU_ABI_VERSION || hash() != code.planHash)
    return fail("corrupt: its CPU code does not match its own description");
  return model;
}

NativeModel::~NativeModel() {
  if (handle_)
    dlclose(handle_);
  if (fd_ >= 0)
    ::close(fd_);
}

} // namespace lathe::native
