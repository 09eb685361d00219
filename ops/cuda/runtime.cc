// Devices, device memory and copies through the CUDA runtime API (never the driver API).
#include "ops/cuda/runtime.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <mutex>
#include <vector>

#include "engine/tensor/allocator.h"
#include "ops/cuda/cuda_check.h"

namespace ruche {
namespace {

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device) : device_(device) {}
  void* allocate(std::size_t bytes) override {
    CUDA_CHECK(cudaSetDevice(device_));
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
  }
  void deallocate(void* ptr, std::size_t) override {
    cudaSetDevice(device_);
    cudaFree(ptr);
  }

 private:
  int device_;
};

cudaMemcpyKind copy_kind(Device dst, Device src) {
  if (dst.is_cpu()) return cudaMemcpyDeviceToHost;
  return src.is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice;
}

}  // namespace

Allocator& cuda_allocator(int index) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<CudaAllocator>> allocators;
  std::lock_guard<std::mutex> lock(mutex);
  if (allocators.empty()) {
    std::string why;
    const auto devices = cuda::list_devices(&why);
    RUCHE_REQUIRE(!devices.empty()) << "cuda:" << index << " requested but " << why;
    for (const auto& d : devices) allocators.push_back(std::make_unique<CudaAllocator>(d.index));
  }
  RUCHE_REQUIRE(index >= 0 && index < static_cast<int>(allocators.size()))
      << "cuda:" << index << " requested but only " << allocators.size() << " CUDA device(s)";
  return *allocators[static_cast<std::size_t>(index)];
}

void cuda_copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                     std::size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, copy_kind(dst_device, src_device)));
}

void cuda_zero_bytes(void* ptr, Device device, std::size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device.index));
  CUDA_CHECK(cudaMemset(ptr, 0, bytes));
}

namespace cuda {

bool compiled_with_cuda() { return true; }

std::vector<DeviceInfo> list_devices(std::string* why_none) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    if (why_none) {
      *why_none = status == cudaSuccess ? "the driver reports none" : cudaGetErrorString(status);
    }
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return {};
  }
  std::vector<DeviceInfo> devices;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
    DeviceInfo info;
    info.index = i;
    info.name = prop.name;
    info.total_memory = prop.totalGlobalMem;
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    info.multiprocessors = prop.multiProcessorCount;
    devices.push_back(info);
  }
  return devices;
}

std::string library_versions() {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  auto version = [](int v) {
    return v ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : std::string("none");
  };
  return "CUDA runtime " + version(runtime) + ", driver " + version(driver);
}

}  // namespace cuda
}  // namespace ruche
