// The CUDA implementations of every op in ops.h, same signatures, in ruche::ops::gpu;
// cuda_op_table.cc puts them in the CUDA table. What the CUDA ops accept beyond the CPU's f32:
//   eltwise.cu, softmax.cu, pooling.cu: f32, bf16 or f16 tensors, one dtype per call (masks u8,
//     indices i32); float compute, one rounding on store.
//   conv.cc: x, w, b, y and their gradients f32, or bf16 / f16 (fp32 compute); w, b in x's dtype.
//   batch_norm.cc: x, y, dy, dx f32, bf16 or f16 with f32 gamma, beta and statistics. The count
//     checks of the sync pieces (n > 1, n > 0) are not made: the count is on the device; a bad one
//     gives NaN.
//   linear.cc: f32, bf16 or f16 inputs (the two of a product alike), output f32 or their dtype.
//   loss.cu: logits and dlogits f32, bf16 or f16; probs f32. Forward copies one word back to check
//     the labels; backward does not check them again (a row with a bad label gets NaN).
//   cast.cu: f32 <-> bf16 <-> f16, round to nearest even.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/op_table.h"

namespace ruche::ops::gpu {

#define RUCHE_CUDA_OP_DECL(name, params, args, tensors) void name params;
RUCHE_OPS(RUCHE_CUDA_OP_DECL)
#undef RUCHE_CUDA_OP_DECL

// The convolution algorithm cache, for tests: shapes cached (all devices, all math settings),
// algorithm choices made so far, and what one shape got under the current gpu_math().
struct ConvAlgorithms {
  bool cached = false;  // the shape has a cache entry under the current settings
  // cuDNN's cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t values; -1: not chosen yet.
  int forward = -1, backward_data = -1, backward_weights = -1;
  std::size_t forward_workspace = 0, backward_data_workspace = 0, backward_weights_workspace = 0;
};
std::size_t conv_algorithm_cache_size();
std::uint64_t conv_algorithm_searches();
// x (its device, dtype and shape) and w (its shape) as passed to the ops.
ConvAlgorithms conv_algorithms(const Tensor& x, const Tensor& w, const Conv2dParams& p);

}  // namespace ruche::ops::gpu
