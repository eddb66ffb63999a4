#include "runtime/backends/cuda/CudaDriver.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>

namespace lathe::cuda {
namespace {

/// Resolves every entry point, or names the first one missing.
Expected<DriverApi> resolve(void *library) {
  DriverApi api{};
  std::string missing;
  auto get = [&](auto &fn, const char *name) {
    void *symbol = dlsym(library, name);
    if (!symbol && missing.empty())
      missing = name;
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(symbol);
  };
  get(api.cuInit, "cuInit");
  get(api.cuDriverGetVersion, "cuDriverGetVersion");
  get(api.cuDeviceGetCount, "cuDeviceGetCount");
  get(api.cuDeviceGet, "cuDeviceGet");
  get(api.cuDeviceGetName, "cuDeviceGetName");
  get(api.cuDeviceGetAttribute, "cuDeviceGetAttribute");
  get(api.cuDeviceTotalMem, "cuDeviceTotalMem_v2");
  get(api.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  get(api.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  get(api.cuCtxSetCurrent, "cuCtxSetCurrent");
  get(api.cuCtxSynchronize, "cuCtxSynchronize");
  get(api.cuModuleLoadData, "cuModuleLoadData");
  get(api.cuModuleUnload, "cuModuleUnload");
  get(api.cuModuleGetFunction, "cuModuleGetFunction");
  get(api.cuFuncSetAttribute, "cuFuncSetAttribute");
  get(api.cuModuleGetGlobal, "cuModuleGetGlobal_v2");
  get(api.cuLaunchKernel, "cuLaunchKernel");
  api.cuLaunchKernelEx = reinterpret_cast<decltype(api.cuLaunchKernelEx)>(
      dlsym(library, "cuLaunchKernelEx")); // optional
  api.cuTensorMapEncodeTiled = reinterpret_cast<decltype(api.cuTensorMapEncodeTiled)>(
      dlsym(library, "cuTensorMapEncodeTiled")); // optional
  get(api.cuMemAlloc, "cuMemAlloc_v2");
  get(api.cuMemFree, "cuMemFree_v2");
  get(api.cuMemAllocHost, "cuMemAllocHost_v2");
  get(api.cuMemFreeHost, "cuMemFreeHost");
  get(api.cuMemsetD8, "cuMemsetD8_v2");
  get(api.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  get(api.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  get(api.cuMemcpyDtoD, "cuMemcpyDtoD_v2");
  get(api.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  get(api.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  get(api.cuStreamCreate, "cuStreamCreate");
  get(api.cuStreamDestroy, "cuStreamDestroy_v2");
  get(api.cuStreamSynchronize, "cuStreamSynchronize");
  get(api.cuStreamBeginCapture, "cuStreamBeginCapture_v2");
  get(api.cuStreamEndCapture, "cuStreamEndCapture");
  get(api.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
  get(api.cuGraphLaunch, "cuGraphLaunch");
  get(api.cuGraphExecDestroy, "cuGraphExecDestroy");
  get(api.cuGraphDestroy, "cuGraphDestroy");
  get(api.cuGetErrorString, "cuGetErrorString");
  if (!missing.empty())
    return Error("the CUDA driver (libcuda.so.1) lacks " + missing + "; it is too old");
  return api;
}

Expected<DriverApi> open() {
  // Never unloaded: contexts and modules may live until the process ends.
  void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library)
    return Error("no CUDA driver on this machine (libcuda.so.1 cannot be opened): the "
                 "cuda target needs an NVIDIA GPU and its driver");
  Expected<DriverApi> api = resolve(library);
  if (!api)
    return api;
  if (CUresult r = api->cuInit(0); r != CUDA_SUCCESS)
    return Error("the CUDA driver does not start (" + describe(*api, r) +
                 "): no usable NVIDIA GPU here");
  return api;
}

} // namespace

Expected<const DriverApi *> driver() {
  static std::once_flag once;
  static Expected<DriverApi> loaded = Error("");
  std::call_once(once, [] { loaded = open(); });
  if (!loaded)
    return loaded.error();
  return &*loaded;
}

std::string describe(const DriverApi &api, CUresult result) {
  const char *text = nullptr;
  if (api.cuGetErrorString && api.cuGetErrorString(result, &text) == CUDA_SUCCESS && text)
    return fmt::format("{} (error {})", text, result);
  return fmt::format("error {}", result);
}

Status check(const DriverApi &api, CUresult result, const std::string &what) {
  if (result == CUDA_SUCCESS)
    return Status::ok();
  return Error(what + ": " + describe(api, result));
}

} // namespace lathe::cuda
