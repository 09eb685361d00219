// Devices, the caching device allocator and copies, through the CUDA runtime API (never the
// driver API, so binaries start on machines without a driver).
#include "ops/cuda/runtime.h"

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <bit>
#include <cstdio>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/tensor/allocator.h"
#include "ops/cuda/cublas_api.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/host_wait.h"
#include "ops/cuda/kernel_util.h"

namespace ruche {
namespace cuda {
// What ops/cuda/host_wait.h counts and host_waits() reads.
static thread_local std::uint64_t waits_of_this_thread = 0;
}  // namespace cuda

namespace {

constexpr std::size_t kMinBlock = 512;

std::string mib(std::size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

// One device's cache: free lists keyed by size class, and the size class of every live block.
class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  // Never destroyed (see cuda_allocator): freeing at exit would race the runtime's own teardown.

  void* allocate(std::size_t bytes) override {
    const std::size_t size = cuda::allocator_size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.requests;
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= size;
      ++stats_.cache_hits;
    } else {
      p = device_malloc(size, bytes);
    }
    live_.emplace(p, size);
    stats_.allocated_bytes += size;
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes) {
      stats_.peak_allocated_bytes = stats_.allocated_bytes;
    }
    return p;
  }

  // Called from destructors: never throws and makes no CUDA call, the block only changes lists.
  void deallocate(void* ptr, std::size_t) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) {
      std::fprintf(stderr, "ruche: cuda:%d: deallocate of a pointer this allocator did not give\n",
                   device_);
      return;
    }
    const std::size_t size = it->second;
    live_.erase(it);
    stats_.allocated_bytes -= size;
    free_[size].push_back(ptr);
    stats_.cached_bytes += size;
  }

  cuda::AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached();
  }

  // A live block straight back to the driver, not into a free list: for a block of a size no
  // one will ask again. cudaFree waits for the device, so work queued on the block runs first.
  void release(void* ptr) {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    RUCHE_CHECK(it != live_.end()) << "cuda:" << device_ << ": release of a pointer this "
                                   << "allocator did not give";
    const std::size_t size = it->second;
    live_.erase(it);
    stats_.allocated_bytes -= size;
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaFree(ptr));
    ++stats_.device_frees;
    stats_.reserved_bytes -= size;
  }

 private:
  // Holds mutex_.
  void* device_malloc(std::size_t size, std::size_t requested) {
    CUDA_CHECK(cudaSetDevice(device_));
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation && stats_.cached_bytes > 0) {
      cudaGetLastError();  // clear it, give the cache back to the driver and try once more
      release_cached();
      status = cudaMalloc(&p, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      RUCHE_FAIL() << "out of memory on cuda:" << device_ << " allocating " << mib(requested)
                   << " (" << mib(stats_.allocated_bytes) << " in use by tensors, "
                   << mib(stats_.reserved_bytes) << " reserved)";
    }
    CUDA_CHECK(status);
    ++stats_.device_mallocs;
    stats_.reserved_bytes += size;
    return p;
  }

  // Holds mutex_.
  void release_cached() {
    if (stats_.cached_bytes == 0) return;
    CUDA_CHECK(cudaSetDevice(device_));
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        CUDA_CHECK(cudaFree(p));
        ++stats_.device_frees;
        stats_.reserved_bytes -= size;
      }
      blocks.clear();
    }
    stats_.cached_bytes = 0;
  }

  const int device_;
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::unordered_map<void*, std::size_t> live_;
  cuda::AllocatorStats stats_;
};

cudaMemcpyKind copy_kind(Device dst, Device src) {
  if (dst.is_cpu()) return cudaMemcpyDeviceToHost;
  return src.is_cpu() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice;
}

CachingAllocator& caching_allocator(int index) {
  static std::mutex mutex;
  // Leaked on purpose: tensors in static objects may be freed after main returns.
  static auto* allocators = new std::vector<std::unique_ptr<CachingAllocator>>();
  std::lock_guard<std::mutex> lock(mutex);
  if (allocators->empty()) {
    std::string why;
    const auto devices = cuda::list_devices(&why);
    RUCHE_REQUIRE(!devices.empty()) << "cuda:" << index << " requested but " << why;
    for (const auto& d : devices) {
      allocators->push_back(std::make_unique<CachingAllocator>(d.index));
    }
  }
  RUCHE_REQUIRE(index >= 0 && index < static_cast<int>(allocators->size()))
      << "cuda:" << index << " requested but only " << allocators->size() << " CUDA device(s)";
  return *(*allocators)[static_cast<std::size_t>(index)];
}

// Page-locked host blocks (cudaHostAlloc); where no device answers, plain host memory. Decided
// once: a block's deallocation must match its allocation.
class PinnedAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    if (!has_device()) return cpu_allocator().allocate(bytes);
    void* p = nullptr;
    CUDA_CHECK(cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocPortable));
    return p;
  }
  void deallocate(void* ptr, std::size_t bytes) override {
    if (!has_device()) return cpu_allocator().deallocate(ptr, bytes);
    cudaFreeHost(ptr);  // from destructors: no throw; a failure here changes nothing we could fix
  }

 private:
  static bool has_device() {
    static const bool any = !cuda::list_devices().empty();
    return any;
  }
};

// The copy stream of a device: non-blocking, so its copies overlap the compute stream's work.
cudaStream_t copy_stream(int device) {
  static std::mutex mutex;
  static std::unordered_map<int, cudaStream_t> streams;  // never destroyed, like the allocators
  std::lock_guard<std::mutex> lock(mutex);
  auto it = streams.find(device);
  if (it != streams.end()) return it->second;
  CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  streams.emplace(device, s);
  return s;
}

// One destination's events: `released` on the compute stream after its last reader, `done` on
// the copy stream after the copy.
struct SideCopyState {
  int device = 0;
  cudaEvent_t released = nullptr, done = nullptr;
  bool ever_released = false;
};

}  // namespace

Allocator& cuda_allocator(int index) { return caching_allocator(index); }

Allocator& cuda_pinned_allocator() {
  static PinnedAllocator allocator;
  return allocator;
}

void* cuda_side_copy_create(int device) {
  auto state = std::make_unique<SideCopyState>();
  state->device = device;
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaEventCreateWithFlags(&state->released, cudaEventDisableTiming));
  state->done = ops::gpu::waitable_event();  // a loader thread waits on it
  // The destination may be a block the caching allocator took back while compute work enqueued
  // before still uses it (ordered on the compute stream only): the first copy waits for it too.
  CUDA_CHECK(cudaEventRecord(state->released, ops::gpu::current_stream()));
  state->ever_released = true;
  return state.release();
}

void cuda_side_copy_destroy(void* state) {
  auto* side = static_cast<SideCopyState*>(state);
  cudaSetDevice(side->device);
  cudaEventDestroy(side->released);
  cudaEventDestroy(side->done);
  delete side;
}

void cuda_side_copy(void* state, void* dst, const void* src, std::size_t bytes) {
  auto* side = static_cast<SideCopyState*>(state);
  CUDA_CHECK(cudaSetDevice(side->device));
  const cudaStream_t stream = copy_stream(side->device);
  if (side->ever_released) CUDA_CHECK(cudaStreamWaitEvent(stream, side->released, 0));
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaEventRecord(side->done, stream));
  ops::gpu::wait_event(
      side->done);  // a loader thread waits (blocking, not spinning), never the GPU
}

void cuda_side_copy_release(void* state) {
  auto* side = static_cast<SideCopyState*>(state);
  CUDA_CHECK(cudaSetDevice(side->device));
  CUDA_CHECK(cudaEventRecord(side->released, ops::gpu::current_stream()));
  side->ever_released = true;
}

// Readback's state: the device and a blocking event recorded after the queued copies.
struct ReadbackState {
  int device = 0;
  cudaEvent_t copied = nullptr;
};

void* cuda_readback_create(int device) {
  auto state = std::make_unique<ReadbackState>();
  state->device = device;
  CUDA_CHECK(cudaSetDevice(device));
  state->copied = ops::gpu::waitable_event();  // the training thread's one wait a step
  return state.release();
}

void cuda_readback_destroy(void* state) {
  auto* rb = static_cast<ReadbackState*>(state);
  cudaSetDevice(rb->device);
  cudaEventDestroy(rb->copied);
  delete rb;
}

void cuda_readback_copy(void* state, void* dst, const void* src, std::size_t bytes) {
  auto* rb = static_cast<ReadbackState*>(state);
  CUDA_CHECK(cudaSetDevice(rb->device));
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ops::gpu::current_stream()));
}

void cuda_readback_wait(void* state) {
  auto* rb = static_cast<ReadbackState*>(state);
  CUDA_CHECK(cudaSetDevice(rb->device));
  CUDA_CHECK(cudaEventRecord(rb->copied, ops::gpu::current_stream()));
  ops::gpu::wait_event(rb->copied);
}

void cuda_copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                     std::size_t bytes) {
  if (!dst_device.is_cpu()) {
    CUDA_CHECK(cudaSetDevice(dst_device.index));
  } else if (!src_device.is_cpu()) {
    CUDA_CHECK(cudaSetDevice(src_device.index));
  }
  const cudaMemcpyKind kind = copy_kind(dst_device, src_device);
  if (kind == cudaMemcpyDeviceToDevice) {  // queued on the compute stream: the host goes on
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, ops::gpu::current_stream()));
    return;
  }
  ops::gpu::copy_and_wait(dst, src, bytes, kind);
}

void cuda_use_device(int device) { CUDA_CHECK(cudaSetDevice(device)); }

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
  cudaGetLastError();
  auto cuda_version = [](int v) {
    return v ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : std::string("none");
  };
  // Both libraries answer without a handle or a device: these are the loaded libraries' versions,
  // printed beside the headers' (a different library than the one built against shows here).
  int dnn[3] = {0, 0, 0};
  const bool dnn_ok = cudnnGetProperty(MAJOR_VERSION, &dnn[0]) == CUDNN_STATUS_SUCCESS &&
                      cudnnGetProperty(MINOR_VERSION, &dnn[1]) == CUDNN_STATUS_SUCCESS &&
                      cudnnGetProperty(PATCH_LEVEL, &dnn[2]) == CUDNN_STATUS_SUCCESS;
  int blas[3] = {0, 0, 0};
  bool blas_ok = false;
  try {  // opens cuBLAS (ops/cuda/cublas_api.h): "unknown" where it cannot
    const auto get = ops::gpu::cublas().get_property;
    blas_ok = get(MAJOR_VERSION, &blas[0]) == CUBLAS_STATUS_SUCCESS &&
              get(MINOR_VERSION, &blas[1]) == CUBLAS_STATUS_SUCCESS &&
              get(PATCH_LEVEL, &blas[2]) == CUBLAS_STATUS_SUCCESS;
  } catch (const Error&) {
  }
  auto triple = [](int major, int minor, int patch) {
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  };
  auto loaded = [&triple](bool ok, const int* v) {
    return ok ? triple(v[0], v[1], v[2]) : std::string("unknown");
  };
  return "CUDA runtime " + cuda_version(runtime) + " (built " + cuda_version(CUDART_VERSION) +
         "), driver " + cuda_version(driver) + ", cuDNN " + loaded(dnn_ok, dnn) + " (built " +
         triple(CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL) + "), cuBLAS " + loaded(blas_ok, blas) +
         " (built " + triple(CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH) + ")";
}

std::size_t allocator_size_class(std::size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  const std::size_t step = std::bit_floor(bytes) / 4;
  return (bytes + step - 1) / step * step;
}

AllocatorStats allocator_stats(int device) { return caching_allocator(device).stats(); }

void empty_cache(int device) { caching_allocator(device).empty_cache(); }

void release_block(int device, void* ptr) { caching_allocator(device).release(ptr); }

void synchronize(int device) {
  CUDA_CHECK(cudaSetDevice(device));
  ops::gpu::wait_device();
}

void* compute_stream() { return static_cast<void*>(ops::gpu::current_stream()); }

std::uint64_t host_waits() { return waits_of_this_thread; }

}  // namespace cuda

namespace ops::gpu {

void wait_stream(cudaStream_t stream) {
  ++cuda::waits_of_this_thread;
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

cudaEvent_t waitable_event() {
  cudaEvent_t event = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming | cudaEventBlockingSync));
  return event;
}

void wait_event(cudaEvent_t event) {
  ++cuda::waits_of_this_thread;
  CUDA_CHECK(cudaEventSynchronize(event));
}

void wait_device() {
  ++cuda::waits_of_this_thread;
  CUDA_CHECK(cudaDeviceSynchronize());
}

void copy_and_wait(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  ++cuda::waits_of_this_thread;
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
}

}  // namespace ops::gpu
}  // namespace ruche
