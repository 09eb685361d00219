// Readback: the few device values the host needs after a training step (the losses, the hits, the
// label checks, the gradient statistics), read with one host wait per step (docs/ARCHITECTURE.md,
// One step). Each source is registered once; fetch() queues a copy of every source into pinned
// host memory on the compute stream after the work that writes it, then waits once, on a
// blocking event. On the CPU the sources are already on the host: fetch() copies.
//
//   Readback rb(device);  const int loss = rb.add(net.loss());  ...
//   per step:  queue the step;  rb.fetch();  rb.host(loss).data<float>()[0]
#pragma once

#include <vector>

#include "engine/tensor/tensor.h"

namespace ruche {

class Readback {
 public:
  explicit Readback(Device device);  // the sources' device
  ~Readback();
  Readback(const Readback&) = delete;
  Readback& operator=(const Readback&) = delete;

  // Registers `source` (contiguous, on the device; a view of a buffer the step writes) and
  // returns the index of its host copy.
  int add(const Tensor& source);
  // Copies every source to its host tensor; returns when they have arrived (one wait).
  void fetch();
  // The host copy of source `index` as of the last fetch().
  const Tensor& host(int index) const;

 private:
  Device device_;
  void* state_ = nullptr;  // the CUDA event (ops/cuda/runtime.cc); null on cpu
  std::vector<Tensor> sources_, hosts_;
};

}  // namespace ruche
