// How a per-channel sum over image-major data is cut into GPU blocks: value (image, c, p) of
// [images, channels, plane] sits at (image * channels + c) * plane + p (plain, NCHW) or at
// (image * plane + p) * channels + c (channels-last, NHWC), and block (c, k) of a channels x chunks
// grid sums chunk k of channel c, a run of whole images. Chunks are added so that a layer with few
// channels still fills the card; pass 1 writes one partial per (channel, chunk), pass 2 adds each
// channel's partials in chunk order.
// Plain arithmetic and no CUDA types: the kernels (channel_reduction.cuh) and the CPU tests share
// it.
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "engine/host_device.h"

namespace ruche::ops::gpu {

constexpr int kReductionBlocksPerSm = 4;          // resident blocks per SM that hide load latency
constexpr std::int64_t kMinValuesPerThread = 4;   // a smaller chunk costs more than it saves
constexpr std::int64_t kMaxWantedChunks = 32767;  // chunks stay within CUDA's grid height, 65535

// Where the values of [images, channels, plane] data lie: image-major in both layouts, the channel
// and the plane position swapped in channels-last data (engine/tensor/layout.h's nhwc).
struct ChannelData {
  std::int64_t images = 0, channels = 0, plane = 0;
  bool channels_last = false;

  RUCHE_HOST_DEVICE std::int64_t numel() const { return images * channels * plane; }
  RUCHE_HOST_DEVICE std::int64_t per_channel() const { return images * plane; }
  RUCHE_HOST_DEVICE std::int64_t offset(std::int64_t image, std::int64_t c, std::int64_t p) const {
    return channels_last ? (image * plane + p) * channels + c : (image * channels + c) * plane + p;
  }
  // Value j of channel c, counted image by image (j < per_channel()).
  RUCHE_HOST_DEVICE std::int64_t value_offset(std::int64_t c, std::int64_t j) const {
    const std::int64_t image = j / plane;
    return offset(image, c, j - image * plane);
  }
  // The channel of the value at offset `at`.
  RUCHE_HOST_DEVICE std::int64_t channel_of(std::int64_t at) const {
    return channels_last ? at % channels : (at / plane) % channels;
  }
};

struct ChannelReductionPlan {
  ChannelData data;                   // the layout tells the walk where values are, not the cut
  int threads = 0;                    // per block
  std::int64_t chunks = 1;            // per channel
  std::int64_t images_per_chunk = 0;  // the last chunk holds what is left, no more

  RUCHE_HOST_DEVICE std::int64_t blocks() const { return data.channels * chunks; }
  RUCHE_HOST_DEVICE std::int64_t first_image(std::int64_t chunk) const {
    return chunk * images_per_chunk;
  }
  RUCHE_HOST_DEVICE std::int64_t end_image(std::int64_t chunk) const {
    const std::int64_t end = first_image(chunk) + images_per_chunk;
    return end < data.images ? end : data.images;
  }
};

// Chunks per channel: enough that channels x chunks is kReductionBlocksPerSm blocks per SM, no
// more than the images (a chunk is whole planes) nor than kMinValuesPerThread values per thread
// allow. Depends on the shape and the card only (not the layout), never on scheduling.
inline ChannelReductionPlan plan_channel_reduction(const ChannelData& data, int multiprocessors,
                                                   int threads) {
  const std::int64_t images = data.images, channels = data.channels, plane = data.plane;
  RUCHE_CHECK(images >= 0 && channels >= 0 && plane >= 0 && multiprocessors > 0 && threads > 0)
      << "plan_channel_reduction: images " << images << ", channels " << channels << ", plane "
      << plane << ", SMs " << multiprocessors << ", threads " << threads;
  ChannelReductionPlan plan{data, threads, 1, images};
  if (images == 0 || channels == 0 || plane == 0) return plan;
  const std::int64_t target = std::int64_t{multiprocessors} * kReductionBlocksPerSm;
  const std::int64_t for_card = (target + channels - 1) / channels;
  const std::int64_t for_work = images * plane / (std::int64_t{threads} * kMinValuesPerThread);
  const std::int64_t wanted =
      std::clamp<std::int64_t>(std::min({for_card, for_work, images}), 1, kMaxWantedChunks);
  // Rounding the chunk size down keeps at least `wanted` chunks (at most 2 * wanted).
  plan.images_per_chunk = images / wanted;
  plan.chunks = (images + plan.images_per_chunk - 1) / plan.images_per_chunk;
  return plan;
}

// The values one thread of block (channel, chunk) adds: the chunk's values counted image by image,
// thread t taking t, t + threads, t + 2 * threads, ..., so consecutive threads read consecutive
// addresses of a plain plane (in channels-last data they are `channels` apart, and the blocks of
// neighbouring channels share the cache lines). The position advances by whole planes and a
// remainder, both divided out once per thread: no value costs a 64-bit divide.
class PlaneWalk {
 public:
  RUCHE_HOST_DEVICE PlaneWalk(const ChannelReductionPlan& plan, std::int64_t channel,
                              std::int64_t chunk, int thread)
      : data_(plan.data),
        channel_(channel),
        end_(plan.end_image(chunk)) {
    const std::int64_t plane = data_.plane;
    if (plane == 0) {
      image_ = end_;
      return;
    }
    image_ = plan.first_image(chunk) + thread / plane;
    p_ = thread % plane;
    image_step_ = plan.threads / plane;
    p_step_ = plan.threads % plane;
  }
  RUCHE_HOST_DEVICE bool done() const { return image_ >= end_; }
  RUCHE_HOST_DEVICE std::int64_t offset() const { return data_.offset(image_, channel_, p_); }
  RUCHE_HOST_DEVICE void next() {
    image_ += image_step_;
    p_ += p_step_;
    if (p_ >= data_.plane) {
      p_ -= data_.plane;
      ++image_;
    }
  }

 private:
  ChannelData data_;
  std::int64_t channel_, end_;
  std::int64_t image_ = 0, p_ = 0, image_step_ = 0, p_step_ = 0;
};

// Where partial `term` of (channel, chunk) lives in pass 1's scratch of terms x blocks() doubles:
// a channel's partials of one term are adjacent, in chunk order, for pass 2.
RUCHE_HOST_DEVICE inline std::int64_t partial_index(const ChannelReductionPlan& plan, int term,
                                                    std::int64_t channel, std::int64_t chunk) {
  return (term * plan.data.channels + channel) * plan.chunks + chunk;
}

// block_reduce's two trees (kernel_util.h), as lane 0 sees them: first within each warp, shuffle
// offsets n/2, ..., 1 over a power-of-two n values, lane k adding lane k + offset to its own...
RUCHE_HOST_DEVICE inline double warp_tree(double* v, int n) {
  for (int offset = n / 2; offset > 0; offset /= 2) {
    for (int k = 0; k < offset; ++k) v[k] = v[k] + v[k + offset];
  }
  return v[0];
}
// ... then over the warp totals, offsets 16, ..., 1, lane k adding only while k + offset < warps.
// Both overwrite v.
RUCHE_HOST_DEVICE inline double warp_totals_tree(double* v, int warps) {
  for (int offset = 16; offset > 0; offset /= 2) {
    for (int k = 0; k + offset < warps; ++k) v[k] = v[k] + v[k + offset];
  }
  return v[0];
}

// Channels-last pass 1 (channel_reduction.cuh's tiled kernel): the plain walk's threads read
// `channels` apart there, so a block instead takes a tile of 32 channels, one per lane, and warp w
// of the plain block (c, chunk); its thread (c, group q) plays the plain block's lanes q, q + 8,
// q + 16, q + 24 of warp w, each in its own accumulator, so a warp reads 32 neighbouring channels
// of one row. Every sum keeps the plain kernel's operands and order, so the partials are the same
// bits: the walks, the warp tree (levels 16 and 8 in the thread, 4, 2, 1 across the groups), then
// block_reduce's tree over the warp totals (a second kernel).
constexpr int kTileChannels = 32;
constexpr int kLanesPerThread = 4;  // 4 x K doubles of accumulators: no register pressure
constexpr int kLaneGroups = 32 / kLanesPerThread;

// Thread (c, group) of tiled block (tile, chunk, warp): lane `group`'s value after the warp tree's
// levels 16 and 8, per term. In channels-last data the plain thread t walks the chunk's rows
// (image * plane + p) first + t, first + t + threads, ..., column c.
template <int K, typename Add>
RUCHE_HOST_DEVICE void tiled_lane_group_sums(const ChannelReductionPlan& plan, std::int64_t c,
                                             std::int64_t chunk, int warp, int group,
                                             const Add& add, double* out) {
  const std::int64_t channels = plan.data.channels, plane = plan.data.plane;
  const std::int64_t end = plan.end_image(chunk) * plane;
  // Lane group + kLaneGroups * i reads row + kLaneGroups * i; the last lane's row decides the
  // full steps, and after them one partial step at most (threads > the lanes' span).
  constexpr int span = kLaneGroups * (kLanesPerThread - 1);
  double acc[kLanesPerThread][K] = {};
  std::int64_t row = plan.first_image(chunk) * plane + warp * 32 + group;
  for (; row + span < end; row += plan.threads) {
    for (int i = 0; i < kLanesPerThread; ++i) {
      add((row + kLaneGroups * i) * channels + c, c, acc[i]);
    }
  }
  for (int i = 0; i < kLanesPerThread && row + kLaneGroups * i < end; ++i) {
    add((row + kLaneGroups * i) * channels + c, c, acc[i]);
  }
  for (int term = 0; term < K; ++term) {
    double leaves[kLanesPerThread];
    for (int i = 0; i < kLanesPerThread; ++i) leaves[i] = acc[i][term];
    out[term] = warp_tree(leaves, kLanesPerThread);  // lanes 16 apart, then 8 apart
  }
}

}  // namespace ruche::ops::gpu
