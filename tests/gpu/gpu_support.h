// What the gpu-labelled tests share: skipping without a CUDA device, moving tensors there.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "engine/tensor/tensor.h"
#include "ops/cuda/runtime.h"

namespace ruche::testing {

// Empty when this process can use a CUDA device, else why not (no driver, no device, no CUDA
// build).
inline const std::string& why_no_cuda() {
  static const std::string why = [] {
    std::string reason;
    if (!cuda::list_devices(&reason).empty()) return std::string();
    return reason.empty() ? std::string("no CUDA device") : "no CUDA device: " + reason;
  }();
  return why;
}

inline Tensor on_gpu(const Tensor& t) { return t.to(Device::cuda(0)); }
inline Tensor on_cpu(const Tensor& t) { return t.to(Device::cpu()); }
inline Tensor empty_gpu(const Shape& shape, DType dtype = DType::f32) {
  return Tensor::empty(shape, dtype, Device::cuda(0));
}

}  // namespace ruche::testing

// First statement of every test that needs a device.
#define RUCHE_REQUIRE_CUDA()                           \
  do {                                                 \
    if (!::ruche::testing::why_no_cuda().empty()) {    \
      GTEST_SKIP() << ::ruche::testing::why_no_cuda(); \
    }                                                  \
  } while (0)
