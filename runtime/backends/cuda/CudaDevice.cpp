#include "runtime/backends/cuda/CudaDevice.h"

#include <fmt/format.h>

namespace lathe::cuda {

CudaBuffer::~CudaBuffer() {
  // The context may not be current on the thread that drops the buffer.
  if (device_.bind())
    device_.api().cuMemFree(address_);
}

PinnedHostBuffer::~PinnedHostBuffer() {
  if (device_.bind())
    device_.api().cuMemFreeHost(data_);
}

Expected<CudaDevice *> CudaDevice::instance() {
  static std::once_flag once;
  static Expected<CudaDevice *> device = Error("");
  std::call_once(once, [] {
    device = []() -> Expected<CudaDevice *> {
      Expected<const DriverApi *> loaded = driver();
      if (!loaded)
        return loaded.error();
      const DriverApi &api = **loaded;
      int count = 0;
      if (Status s = check(api, api.cuDeviceGetCount(&count), "counting CUDA devices"); !s)
        return s.error();
      if (count == 0)
        return Error("the CUDA driver sees no GPU (check CUDA_VISIBLE_DEVICES)");
      CUdevice dev = 0;
      CUcontext context = nullptr;
      if (Status s = check(api, api.cuDeviceGet(&dev, 0), "opening CUDA device 0"); !s)
        return s.error();
      if (Status s = check(api, api.cuDevicePrimaryCtxRetain(&context, dev),
                           "creating a context on CUDA device 0");
          !s)
        return s.error();
      // Lives as long as the process, like the context it holds.
      auto *d = new CudaDevice(api, context);
      char name[256] = {};
      api.cuDeviceGetName(name, sizeof(name) - 1, dev);
      int major = 0, minor = 0;
      api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
      api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
      d->capability_ = major * 10 + minor;
      api.cuDeviceGetAttribute(&d->sharedPerBlock_,
                               CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev);
      api.cuDeviceGetAttribute(&d->multiprocessors_, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                               dev);
      d->description_ = fmt::format("{} (sm_{})", name, d->capability_);
      return d;
    }();
  });
  return device;
}

Status CudaDevice::bind() const {
  return check(api_, api_.cuCtxSetCurrent(context_), "binding the CUDA context");
}

Expected<std::unique_ptr<backend::Buffer>> CudaDevice::allocate(size_t bytes) {
  if (Status s = bind(); !s)
    return s.error();
  CUdeviceptr address = 0;
  if (CUresult r = api_.cuMemAlloc(&address, bytes == 0 ? 1 : bytes); r != CUDA_SUCCESS)
    return Error(fmt::format("cannot allocate {} bytes on {}: {}", bytes, description_,
                             describe(api_, r)));
  auto buffer = std::make_unique<CudaBuffer>(*this, address, bytes);
  // Zeroed before anyone uses it: executables run on streams of their own
  // that do not wait for the legacy stream a memset goes to.
  if (Status s = check(api_, api_.cuMemsetD8(address, 0, bytes), "zeroing device memory"); !s)
    return s.error();
  if (Status s = check(api_, api_.cuCtxSynchronize(), "zeroing device memory"); !s)
    return s.error();
  return std::unique_ptr<backend::Buffer>(std::move(buffer));
}

Expected<std::unique_ptr<PinnedHostBuffer>> CudaDevice::allocateHost(size_t bytes) {
  if (Status s = bind(); !s)
    return s.error();
  void *data = nullptr;
  if (CUresult r = api_.cuMemAllocHost(&data, bytes == 0 ? 1 : bytes); r != CUDA_SUCCESS)
    return Error(fmt::format("cannot allocate {} bytes of page-locked host memory: {}", bytes,
                             describe(api_, r)));
  return std::make_unique<PinnedHostBuffer>(*this, data, bytes);
}

void CudaDevice::copy(backend::Buffer &buffer, size_t to, size_t from, size_t bytes) {
  const CUdeviceptr base = static_cast<CudaBuffer &>(buffer).address();
  Status s = bind();
  // A copy on write must land before the next step's kernels read the
  // block, and they run on streams that do not wait for this one.
  if (s)
    s = check(api_, api_.cuMemcpyDtoD(base + to, base + from, bytes),
              "copying inside device memory");
  if (s)
    s = check(api_, api_.cuCtxSynchronize(), "copying inside device memory");
  if (!s)
    keepError(s.error());
}

void CudaDevice::keepError(const Error &error) {
  std::lock_guard<std::mutex> lock(errorMutex_);
  if (error_.empty())
    error_ = error.message();
}

Status CudaDevice::takeError() {
  std::lock_guard<std::mutex> lock(errorMutex_);
  if (error_.empty())
    return Status::ok();
  Status s = Error(error_);
  error_.clear();
  return s;
}

} // namespace lathe::cuda
