// reduce_channels: per-channel sums over [images, channels, plane] data, plain or channels-last
// (ChannelData), on the channels x chunks grid of channel_reduction.h. Pass 1: block (c, k) adds
// K terms per value of chunk k of channel c (`add(offset, c, sums)`, in double) and writes K
// partials (channels-last data: tiles of 32 channels read coalesced, the same partials in the same
// order, see tiled_lane_group_sums); pass 2: thread c adds channel c's partials in chunk order and
// hands the totals to `finish(c, totals)`. Every sum has a fixed order (thread walk, block tree,
// chunk order), so a result is the same run to run, as with one block per channel before, and
// channels-last data is summed in the same order as plain; the chunk count follows the card's SM
// count, so another card model may round differently. For .cu files only.
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

// Channels-last pass 1 (channel_reduction.h's tiled order): block (tile, chunk, w) of
// (32 channels) x kLaneGroups threads writes warp w's total of each channel of the tile, which
// warp_partials_kernel then adds as block_reduce does. A block per plain warp, not per plain
// block, keeps 2048 threads with 4 loads each in flight per 32 channels and chunk (plain: 8192 x
// 1).
template <int K, typename Add>
__global__ void tiled_warp_totals_kernel(ChannelReductionPlan plan, Add add, double* warp_totals) {
  __shared__ double groups[K][kLaneGroups][kTileChannels];
  const int lane = static_cast<int>(threadIdx.x), group = static_cast<int>(threadIdx.y);
  const int warp = static_cast<int>(blockIdx.z);
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kTileChannels + lane;
  const std::int64_t chunk = blockIdx.y;
  const bool in_tile = c < plan.data.channels;  // the last tile may hang past the channels
  double sums[K] = {};
  if (in_tile) tiled_lane_group_sums<K>(plan, c, chunk, warp, group, add, sums);
  for (int term = 0; term < K; ++term) groups[term][group][lane] = sums[term];
  __syncthreads();
  if (group != 0 || !in_tile) return;
  const int warps = static_cast<int>(gridDim.z);
  for (int term = 0; term < K; ++term) {
    double v[kLaneGroups];
    for (int q = 0; q < kLaneGroups; ++q) v[q] = groups[term][q][lane];
    warp_totals[partial_index(plan, term, c, chunk) * warps + warp] = warp_tree(v, kLaneGroups);
  }
}

// Partial i (term, channel, chunk) from its block's warp totals, in block_reduce's second tree.
template <int Warps>
__global__ void warp_partials_kernel(std::int64_t count, const double* warp_totals,
                                     double* partials) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    double v[Warps];
    for (int w = 0; w < Warps; ++w) v[w] = warp_totals[i * Warps + w];
    partials[i] = warp_totals_tree(v, Warps);
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

// Pass 1 for channels-last data: the same partials as channel_partials_kernel, read coalesced.
template <int K, typename Add>
void tiled_partials(const ChannelReductionPlan& plan, Add add, int device, double* partials,
                    cudaStream_t stream) {
  // tiled_lane_group_sums' single partial step needs threads > 24; a warp total per warp.
  static_assert(kThreads % 32 == 0 && kThreads > 32 && kThreads <= 1024);
  constexpr int warps = kThreads / 32;
  const std::int64_t count = K * plan.blocks();
  const Scratch warp_totals(Device::cuda(device),
                            sizeof(double) * warps * static_cast<std::size_t>(count));
  const auto tiles =
      static_cast<unsigned>((plan.data.channels + kTileChannels - 1) / kTileChannels);
  const dim3 grid(tiles, static_cast<unsigned>(plan.chunks), warps);
  const dim3 block(kTileChannels, kLaneGroups);
  tiled_warp_totals_kernel<K><<<grid, block, 0, stream>>>(plan, add, warp_totals.as<double>());
  CUDA_CHECK_LAUNCH(tiled_warp_totals_kernel);
  warp_partials_kernel<warps>
      <<<blocks_for(count), kThreads, 0, stream>>>(count, warp_totals.as<double>(), partials);
  CUDA_CHECK_LAUNCH(warp_partials_kernel);
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
  if (data.channels_last) {
    tiled_partials<K>(plan, add, device, partials.as<double>(), stream);
  } else {
    const dim3 grid(static_cast<unsigned>(data.channels), static_cast<unsigned>(plan.chunks));
    channel_partials_kernel<K><<<grid, kThreads, 0, stream>>>(plan, add, partials.as<double>());
    CUDA_CHECK_LAUNCH(channel_partials_kernel);
  }
  const auto totals_blocks = static_cast<unsigned>((data.channels + kThreads - 1) / kThreads);
  channel_totals_kernel<K>
      <<<totals_blocks, kThreads, 0, stream>>>(plan, partials.as<double>(), finish);
  CUDA_CHECK_LAUNCH(channel_totals_kernel);
}

}  // namespace ruche::ops::gpu
