// The bias half of a convolution, as our own kernels: adding b[c] to every element of channel c,
// and its gradient db[c] = the sum of dy over N, H and W (a fixed order: deterministic). For f32,
// bf16 and f16 data; sums run in fp32 (add) and double (gradient) and are rounded once. Internal
// to ops/cuda (conv.cc).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/tensor/dtype.h"

namespace ruche::ops::gpu {

// y [n, channels, plane] += b [channels], in place. channels_last: y is stored [n, plane, channels]
// (Layout::nhwc), the channel of element i is i % channels.
void add_channel_bias(DType dtype, void* y, const void* b, std::int64_t n, std::int64_t channels,
                      std::int64_t plane, bool channels_last, cudaStream_t stream);
// db [channels] = sum over n and plane of dy [n, channels, plane] (overwritten); channels_last as
// for add_channel_bias.
void channel_bias_gradient(DType dtype, const void* dy, void* db, std::int64_t n,
                           std::int64_t channels, std::int64_t plane, bool channels_last,
                           cudaStream_t stream);

}  // namespace ruche::ops::gpu
