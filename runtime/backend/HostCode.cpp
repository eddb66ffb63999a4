#include "runtime/backend/HostCode.h"

#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

namespace lathe::backend {

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

Expected<std::unique_ptr<HostCode>> HostCode::load(const plan::KernelPlan &plan,
                                                   const std::string &source,
                                                   const Expectation &expect) {
  auto fail = [&](const std::string &what) { return Error(source + ": " + what); };
  if (!plan.native)
    return fail(fmt::format("it holds no {}; recompile the model", expect.what));
  const plan::NativeCode &code = *plan.native;
  if (!hostSupports(code.isa))
    return fail(fmt::format("its {} was built for {}, which this CPU does not support; {}",
                            expect.what, code.isa, expect.isaAdvice));
  if (code.abiVersion != expect.abiVersion)
    return fail(fmt::format("its {} uses ABI version {}, this runtime version {}; "
                            "recompile the model",
                            expect.what, code.abiVersion, expect.abiVersion));
  if (code.planHash != plan::planHash(plan))
    return fail(fmt::format("corrupt: its {} was generated for another kernel plan", expect.what));
  static const uint8_t kElf[4] = {0x7f, 'E', 'L', 'F'};
  if (code.object.size() < 64 || std::memcmp(code.object.data(), kElf, 4) != 0)
    return fail(fmt::format("corrupt: its {} is not a shared object", expect.what));

  std::unique_ptr<HostCode> loaded(new HostCode());
  loaded->fd_ = memfd_create("lathe-host-code", MFD_CLOEXEC);
  if (loaded->fd_ < 0)
    return fail(fmt::format("cannot map its {}: memfd_create: {}", expect.what,
                            std::strerror(errno)));
  size_t written = 0;
  while (written < code.object.size()) {
    ssize_t n = ::write(loaded->fd_, code.object.data() + written, code.object.size() - written);
    if (n <= 0)
      return fail(fmt::format("cannot map its {}: {}", expect.what, std::strerror(errno)));
    written += static_cast<size_t>(n);
  }
  std::string path = fmt::format("/proc/self/fd/{}", loaded->fd_);
  loaded->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!loaded->handle_)
    return fail(fmt::format("cannot load its {}: {}", expect.what, dlerror()));
  loaded->source_ = source, loaded->what_ = expect.what, loaded->prefix_ = expect.prefix;
  using AbiFn = uint32_t (*)();
  using HashFn = uint64_t (*)();
  auto abi = reinterpret_cast<AbiFn>(loaded->symbol((expect.prefix + "abi_version").c_str()));
  auto hash = reinterpret_cast<HashFn>(loaded->symbol((expect.prefix + "plan_hash").c_str()));
  if (!abi || !hash)
    return Error(loaded->lacksEntryPoints());
  if (abi() != expect.abiVersion || hash() != code.planHash)
    return fail(fmt::format("corrupt: its {} does not match its own description", expect.what));
  return loaded;
}

void *HostCode::symbol(const char *name) const { return dlsym(handle_, name); }

std::string HostCode::lacksEntryPoints() const {
  return fmt::format("{}: corrupt: its {} lacks the {}* entry points", source_, what_, prefix_);
}

HostCode::~HostCode() {
  if (handle_)
    dlclose(handle_);
  if (fd_ >= 0)
    ::close(fd_);
}

} // namespace lathe::backend
