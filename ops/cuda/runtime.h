// The CUDA runtime unit, seen from outside ops/cuda: device discovery and versions. Includes no
// CUDA header, so any layer may ask which devices exist.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ruche::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  std::size_t total_memory = 0;  // bytes
  int compute_major = 0, compute_minor = 0;
  int multiprocessors = 0;
};

// Whether this binary carries the CUDA backend.
bool compiled_with_cuda();
// The CUDA devices this process can use; empty when there are none, with the reason in why_none
// (no driver, no device, built without CUDA).
std::vector<DeviceInfo> list_devices(std::string* why_none = nullptr);
// "CUDA runtime X.Y (built X.Y), driver X.Y, cuDNN X.Y.Z (built X.Y.Z), cuBLAS X.Y.Z (built
// X.Y.Z)": the loaded libraries' versions (no device needed) beside the headers' built against.
std::string library_versions();

// ---- the caching device allocator (cuda_allocator(index) in engine/tensor/allocator.h) ----
// Each device keeps free lists by size class: a freed block goes back to its list and the next
// request of that class takes it, so a training step after the first calls neither cudaMalloc nor
// cudaFree. Blocks are ordered on the default stream (every op runs there for now), so a block
// freed by the host can be handed out again at once. When cudaMalloc fails, the device's cached
// blocks are released and the request retried once before the error.
struct AllocatorStats {
  std::size_t allocated_bytes = 0;       // in blocks handed out (size-class bytes)
  std::size_t peak_allocated_bytes = 0;  // the most allocated_bytes ever was
  std::size_t cached_bytes = 0;          // in free lists, ready for reuse
  std::size_t reserved_bytes = 0;        // obtained with cudaMalloc and not yet freed
  std::uint64_t requests = 0;            // allocate() calls
  std::uint64_t cache_hits = 0;          // requests served from a free list
  std::uint64_t device_mallocs = 0;      // cudaMalloc calls
  std::uint64_t device_frees = 0;        // cudaFree calls
};
// The bytes a request of `bytes` occupies: at least 512, then rounded up to a quarter of its power
// of two (so at most 25% is wasted and sizes that differ by little share a list).
std::size_t allocator_size_class(std::size_t bytes);
// Throws ruche::Error when the device does not exist or ruche was built without CUDA.
AllocatorStats allocator_stats(int device);
// Returns the device's cached (free) blocks to the driver.
void empty_cache(int device);
// Returns one live block (from cuda_allocator(device)) to the driver at once, not to the cache.
void release_block(int device, void* ptr);

// Waits until the device has run everything enqueued so far (timing, `ruche time`); cpu: nothing.
void synchronize(int device);

// How many times this thread has waited for a GPU so far (stream, event and device syncs, and
// synchronous copies: ops/cuda/host_wait.h). The trainer counts a step's (syncs_per_step); 0
// without CUDA. Per thread: loader threads' waits on their copies do not stall the compute thread.
std::uint64_t host_waits();

// The stream ops run on (ops/cuda/kernel_util.h current_stream()) as an opaque cudaStream_t:
// comm/nccl orders its collectives after the kernels queued there. Null without CUDA.
void* compute_stream();

}  // namespace ruche::cuda
