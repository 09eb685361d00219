#include "ops/cuda/handles.h"

#include "ops/cuda/cublas_api.h"

#include <array>
#include <mutex>
#include <utility>

#include "engine/tensor/allocator.h"
#include "ops/cuda/kernel_util.h"
#include "ops/cuda/runtime.h"
#include "ops/ops.h"

namespace ruche::ops::gpu {
namespace {

constexpr int kMaxDevices = 64;

struct DeviceHandles {
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
};

std::mutex& handles_mutex() {
  static std::mutex m;
  return m;
}

// Holds handles_mutex().
DeviceHandles& handles_of_current_device() {
  static std::array<DeviceHandles, kMaxDevices> all;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  RUCHE_REQUIRE(device >= 0 && device < kMaxDevices) << "cuda:" << device << " out of range";
  return all[static_cast<std::size_t>(device)];
}

}  // namespace

cudnnHandle_t cudnn_handle() {
  std::lock_guard<std::mutex> lock(handles_mutex());
  DeviceHandles& h = handles_of_current_device();
  if (!h.cudnn) {
    CUDNN_CHECK(cudnnCreate(&h.cudnn));
    CUDNN_CHECK(cudnnSetStream(h.cudnn, current_stream()));
  }
  return h.cudnn;
}

cublasHandle_t cublas_handle() {
  std::lock_guard<std::mutex> lock(handles_mutex());
  DeviceHandles& h = handles_of_current_device();
  if (!h.cublas) {
    CUBLAS_CHECK(cublas().create(&h.cublas));
    CUBLAS_CHECK(cublas().set_stream(h.cublas, current_stream()));
    // Results must not depend on the run: no atomics-based reductions inside cuBLAS.
    CUBLAS_CHECK(cublas().set_atomics_mode(h.cublas, CUBLAS_ATOMICS_NOT_ALLOWED));
  }
  // The math mode follows --precision at every call (it is cheap to set).
  CUBLAS_CHECK(cublas().set_math_mode(
      h.cublas, tf32_allowed() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
  return h.cublas;
}

void* workspace(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  std::lock_guard<std::mutex> lock(handles_mutex());
  DeviceHandles& h = handles_of_current_device();
  if (h.workspace_bytes < bytes) {
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    // The old block goes back to the driver, not the cache: the workspace only grows, so no later
    // request asks for its size, and a cached copy would hold its memory for the whole run.
    // Forget it first: if the allocation below throws, a later call must not hand it out.
    void* old = std::exchange(h.workspace, nullptr);
    h.workspace_bytes = 0;
    if (old) cuda::release_block(device, old);
    h.workspace = cuda_allocator(device).allocate(bytes);
    h.workspace_bytes = bytes;
  }
  return h.workspace;
}

bool tf32_allowed() { return gpu_math().precision != Precision::fp32; }

}  // namespace ruche::ops::gpu
