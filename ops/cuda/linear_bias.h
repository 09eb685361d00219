// The bias kernels of the CUDA linear layer (linear_bias.cu), which linear.cc calls around its
// cuBLAS products. Internal to ops/cuda. Tensors are contiguous and of a floating dtype (f32, bf16,
// f16), already checked by the op.
#pragma once

#include <cuda_runtime_api.h>

#include "engine/tensor/tensor.h"

namespace ruche::ops::gpu {

// y[r, c] += b[c] for y [rows, cols] and b [cols], added in float.
void add_bias_to_rows(const Tensor& b, Tensor& y, cudaStream_t stream);

// db[c] = sum over r of dy[r, c] for dy [rows, cols], summed in float in a fixed order (the same
// bits on every run); db is zero when there are no rows.
void sum_rows_into(const Tensor& dy, Tensor& db, cudaStream_t stream);

}  // namespace ruche::ops::gpu
