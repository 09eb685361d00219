// Max and average pooling on oneDNN's pooling primitive: the fast path of the ops in pooling.cc,
// whose loops are the reference path (RUCHE_CPU_REFERENCE=1). Arguments are checked there. x and
// y (dx and dy) are plain or in one blocked layout; max pooling's indices are laid out as y.
// Internal to ops/cpu.
#pragma once

#include "engine/tensor/tensor.h"
#include "ops/ops.h"

namespace ruche::ops::cpu::onednn {

// Whether oneDNN's average pooling divides as p asks: with count_include_pad, PyTorch and Caffe
// leave out the cells past the right padding that ceil_mode adds; oneDNN counts the whole window.
bool avg_pool_fits(const Shape& x, const Shape& y, const Pool2dParams& p);

// indices as ruche's ops define them (h * W + w in the input plane), from oneDNN's workspace.
void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p);
void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dParams& p);

}  // namespace ruche::ops::cpu::onednn
