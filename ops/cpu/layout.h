// What ops/cpu knows of tensor layouts (engine/tensor/layout.h): oneDNN's descriptor for a tensor
// in its layout, for the ops that take blocked tensors. Internal to ops/cpu.
#pragma once

#include "ops/cpu/dnnl_context.h"

namespace ruche::ops::cpu {

// oneDNN's format tag for a 4-d tensor in `layout` (abcd, aBcd8b, aBcd16b, acdb).
dnnl::memory::format_tag format_of(Layout layout);
// The f32 descriptor of t as it lies in memory: plain_desc(t) for a plain tensor, else its
// blocked format.
dnnl::memory::desc tensor_desc(const Tensor& t);

}  // namespace ruche::ops::cpu
