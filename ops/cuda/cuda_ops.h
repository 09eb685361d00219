// The CUDA implementations of ops.h that exist so far, in ruche::ops::gpu; cuda_op_table.cc puts
// them in the CUDA table (an op missing here is a clear "not implemented on cuda" error).
#pragma once

#include "ops/ops.h"

namespace ruche::ops::gpu {

// eltwise.cu
void activation_forward(Activation kind, float alpha, const Tensor& x, Tensor& y);
void activation_backward(Activation kind, float alpha, const Tensor& y, const Tensor& dy,
                         Tensor& dx);
void heaviside_forward(const Tensor& x, Tensor& y, float value_at_zero);
void add(const Tensor& a, const Tensor& b, Tensor& y);
void axpy(float alpha, const Tensor& x, Tensor& y);
void scale(float alpha, Tensor& x);
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, float p, const RngStream& stream);
void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, float p);

// softmax.cu
void softmax_forward(const Tensor& x, Tensor& y);
void softmax_backward(const Tensor& y, const Tensor& dy, Tensor& dx);

// loss.cu
void mse_forward(const Tensor& pred, const Tensor& target, Tensor& loss);
void mse_backward(const Tensor& pred, const Tensor& target, Tensor& dpred, float dloss);

// ---- convolution and pooling (conv.cc, pooling.cu) ----

// ---- batch norm (batch_norm.cc, batch_norm.cu) ----

// ---- linear, cross-entropy, penalties (linear.cc, loss.cu, penalty.cu) ----

// ---- optimizer, casts, non-finite checks (optim.cu, cast.cu) ----

}  // namespace ruche::ops::gpu
