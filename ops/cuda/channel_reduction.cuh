// reduce_channels: per-channel sums over [images, channels, plane] data, plain or channels-last
// (ChannelData), on the channels x chunks grid of channel_reduction.h. Pass 1: block (c, k) adds
// K terms per value of chunk k of channel c (`add(offset, c, sums)`, in double) and writes K
// partials; pass 2: thread c adds channel c's partials in chunk order and hands the totals to
// `finish(c, totals)`. Every sum has a fixed order (thread walk, block tree, chunk order), so a
// result is the same run to run, as with one block per channel before, and channels-last data is
// summed in the same order as plain; the chunk count follows the card's SM count, so another card
// model may round differently. For .cu files only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/cuda/channel_reduction.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/kernel_util.h"
#include "ops/cuda/scratch.h"

namespace ruche::ops::gpu {

template <int K, typename Add>
__global__ void channel_partials_kernel(ChannelReductionPlan plan, Add add, double* partials) {
  __shared__ double shared[32];
  const std::int64_t c = blockIdx.x, chunk = blockIdx.y;
  double sums[K] = {};
  for (PlaneWalk w(plan, c, chunk, static_cast<int>(threadIdx.x)); !w.done(); w.next()) {
    add(w.offset(), c, sums);
  }
  for (int term = 0; term < K; ++term) {
    const double total = block_reduce(sums[term], shared, SumOp{});
    if (threadIdx.x == 0) partials[partial_index(plan, term, c, chunk)] = total;
  }
}

template <int K, typename Finish>
__global__ void channel_totals_kernel(ChannelReductionPlan plan, const double* partials,
                                      Finish finish) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= plan.data.channels) return;
  double totals[K];
  for (int term = 0; term < K; ++term) {
    double sum = 0.0;
    for (std::int64_t chunk = 0; chunk < plan.chunks; ++chunk) {
      sum += partials[partial_index(plan, term, c, chunk)];
    }
    totals[term] = sum;
  }
  finish(c, totals);
}

// The sums of `data` on the current device, queued on `stream` (no host sync). `finish` also runs
// for every channel when there are no values (totals 0).
template <int K, typename Add, typename Finish>
void reduce_channels(const ChannelData& data, Add add, Finish finish, cudaStream_t stream) {
  if (data.channels == 0) return;
  int device = 0, multiprocessors = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
  const ChannelReductionPlan plan = plan_channel_reduction(data, multiprocessors, kThreads);
  // Given back as soon as both passes are queued (ops/cuda/scratch.h).
  const Scratch partials(Device::cuda(device),
                         sizeof(double) * K * static_cast<std::size_t>(plan.blocks()));
  const dim3 grid(static_cast<unsigned>(data.channels), static_cast<unsigned>(plan.chunks));
  channel_partials_kernel<K><<<grid, kThreads, 0, stream>>>(plan, add, partials.as<double>());
  CUDA_CHECK_LAUNCH(channel_partials_kernel);
  const auto totals_blocks = static_cast<unsigned>((data.channels + kThreads - 1) / kThreads);
  channel_totals_kernel<K>
      <<<totals_blocks, kThreads, 0, stream>>>(plan, partials.as<double>(), finish);
  CUDA_CHECK_LAUNCH(channel_totals_kernel);
}

}  // namespace ruche::ops::gpu
