// Every place the host waits for the GPU goes through these (ops/cuda), so the waits of a training
// step can be counted: cuda::host_waits() in ops/cuda/runtime.h, metrics.jsonl's syncs_per_step.
// Internal to ops/cuda (includes CUDA headers).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace ruche::ops::gpu {

// cudaStreamSynchronize, counted.
void wait_stream(cudaStream_t stream);
// A new event for wait_event on the current device: blocking-sync, so a waiting thread sleeps
// instead of spinning a core the loader threads decode on; no timing.
cudaEvent_t waitable_event();
// cudaEventSynchronize, counted.
void wait_event(cudaEvent_t event);
// cudaDeviceSynchronize, counted.
void wait_device();
// A synchronous cudaMemcpy (it returns when the copy is done, after the work queued before it),
// counted.
void copy_and_wait(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);

}  // namespace ruche::ops::gpu
