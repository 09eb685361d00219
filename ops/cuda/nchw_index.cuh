// Element (n, c, h, w) of a [N, C, H, W] tensor and where it lies in memory, plain (NCHW) or
// channels-last (Layout::nhwc: ((n * H + h) * W + w) * C + c), for kernels that take both. The
// layout is a template flag, so a plain kernel compiles to the plain index math alone.
// For .cu files only.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ruche::ops::gpu {

struct Nchw {
  std::int64_t n, c, h, w;
};

// The element at memory offset m of a [N, C, H, W] tensor (N is not needed).
template <bool kChannelsLast>
__host__ __device__ inline Nchw element_at(std::int64_t m, std::int64_t C, std::int64_t H,
                                           std::int64_t W) {
  if constexpr (kChannelsLast) {
    const std::int64_t pixel = m / C;
    return {pixel / (H * W), m % C, (pixel / W) % H, pixel % W};
  } else {
    const std::int64_t plane = m / (H * W);
    return {plane / C, plane % C, (m / W) % H, m % W};
  }
}

// One (n, c) plane in memory: (h, w) lies at base + h * row + w * col.
struct PlaneView {
  std::int64_t base, row, col;
  __host__ __device__ std::int64_t at(std::int64_t h, std::int64_t w) const {
    return base + h * row + w * col;
  }
};

template <bool kChannelsLast>
__host__ __device__ inline PlaneView plane_of(std::int64_t n, std::int64_t c, std::int64_t C,
                                              std::int64_t H, std::int64_t W) {
  if constexpr (kChannelsLast) return {n * H * W * C + c, W * C, C};
  return {(n * C + c) * H * W, W, 1};
}

// The plain (NCHW) index of element e: what keys its random draw whatever the layout.
__host__ __device__ inline std::int64_t plain_index(const Nchw& e, std::int64_t C, std::int64_t H,
                                                    std::int64_t W) {
  return ((e.n * C + e.c) * H + e.h) * W + e.w;
}

// f(std::true_type{}) for channels-last, f(std::false_type{}) for plain: a launcher picks the
// kernel's kChannelsLast as decltype(tag)::value.
template <typename F>
void visit_channels_last(bool channels_last, F&& f) {
  if (channels_last) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

}  // namespace ruche::ops::gpu
