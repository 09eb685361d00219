// The oneDNN engine and stream every CPU op runs on, and memory descriptors for our tensors.
// Only ops/cpu includes oneDNN.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "engine/tensor/tensor.h"

namespace ruche::ops::cpu {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

// A plain (row-major) f32 descriptor for t's shape: nchw for 4-d, nc for 2-d, x for 1-d.
dnnl::memory::desc plain_desc(const Tensor& t);
dnnl::memory::desc plain_desc(const Shape& shape);
// A oneDNN memory object over t's storage (no copy).
dnnl::memory as_memory(const Tensor& t);
dnnl::memory as_memory(const Tensor& t, const dnnl::memory::desc& desc);

}  // namespace ruche::ops::cpu
