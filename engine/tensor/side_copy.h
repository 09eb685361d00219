// SideCopy: host-to-device copies beside compute, for the input pipeline. The copy runs on the
// device's copy stream while the GPU computes the current step; the caller (a loader thread)
// waits for it, so the compute stream never does. One SideCopy per destination buffer.
//
//   producer thread:  fill pinned host batch; side.copy(host_batch, device_slot);  // slot ready
//   training thread:  input.copy_from(device_slot); side.release();  // slot free for the next copy
#pragma once

#include "engine/tensor/tensor.h"

namespace ruche {

class SideCopy {
 public:
  explicit SideCopy(Device device);  // the destination's device; cpu: plain copies
  ~SideCopy();
  SideCopy(const SideCopy&) = delete;
  SideCopy& operator=(const SideCopy&) = delete;

  // dst <- src (contiguous, same bytes), returning when it is done. On a CUDA destination it first
  // waits, on the copy stream, for the compute work enqueued before the last release().
  void copy(const Tensor& src, Tensor& dst);
  // Marks that the compute work reading the destination is enqueued: the next copy() may
  // overwrite it once that work has run.
  void release();

 private:
  Device device_;
  void* state_ = nullptr;  // CUDA events (ops/cuda/runtime.cc); null on cpu
};

}  // namespace ruche
