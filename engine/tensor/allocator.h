// The allocator interface, one per device kind, and byte copies between devices.
// The CUDA implementation lives in ops/cuda (or a stub that says CUDA was not built).
#pragma once

#include <cstddef>

#include "engine/tensor/device.h"

namespace ruche {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes) = 0;
};

// 64-byte aligned host memory, zero-filled pages on first touch.
Allocator& cpu_allocator();
// The caching allocator of CUDA device `index`; throws ruche::Error when ruche was built without
// CUDA or the device does not exist.
Allocator& cuda_allocator(int index);
Allocator& allocator_for(Device device);
// Page-locked host memory, which a GPU copies from asynchronously and at full speed (the input
// pipeline's batches); plain host memory when this process has no CUDA device. Its tensors are
// cpu tensors.
Allocator& pinned_allocator();

// Makes `device` the calling thread's current CUDA device; nothing for cpu. Every thread that
// allocates, copies or launches on a GPU calls it first: CUDA's current device is per thread and
// starts as GPU 0, where a first call would make a context (~0.5 GB) in a run meant for cuda:N.
void use_device(Device device);

// Copies `bytes` between any two devices; synchronous with respect to the host.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes);
// Sets `bytes` bytes at ptr to zero on `device`.
void zero_bytes(void* ptr, Device device, std::size_t bytes);

}  // namespace ruche

namespace ruche {

// Hooks of the CUDA runtime unit (ops/cuda, or ops/cuda_stub.cc that throws): copy_bytes and
// zero_bytes call them when a CUDA device is involved.
void cuda_copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                     std::size_t bytes);
void cuda_zero_bytes(void* ptr, Device device, std::size_t bytes);
void cuda_use_device(int device);
Allocator& cuda_pinned_allocator();  // cpu_allocator() where there is no device

// SideCopy's hooks: an opaque per-destination state of CUDA events on the device's copy stream.
void* cuda_side_copy_create(int device);
void cuda_side_copy_destroy(void* state);
void cuda_side_copy(void* state, void* dst, const void* src, std::size_t bytes);
void cuda_side_copy_release(void* state);

// Readback's hooks: an opaque per-reader state (a blocking-sync event), a device-to-host copy into
// pinned memory queued on the compute stream, and one wait for every copy queued before it.
void* cuda_readback_create(int device);
void cuda_readback_destroy(void* state);
void cuda_readback_copy(void* state, void* dst, const void* src, std::size_t bytes);
void cuda_readback_wait(void* state);

}  // namespace ruche
