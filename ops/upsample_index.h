// The source coordinates of upsample2d (ops.h), shared by ops/cpu and ops/cuda so both devices
// read the same input elements with the same weights: PyTorch's float arithmetic
// (area_pixel_compute_scale, area_pixel_compute_source_index, nearest_idx, guard_index_and_lambda).
#pragma once

// NOLINTNEXTLINE(modernize-deprecated-headers): the global C functions, CUDA's device ones too
#include <math.h>

#include <cstdint>

#include "ops/ops.h"

#if defined(__CUDACC__)
#define RUCHE_UPSAMPLE_HD __host__ __device__
#else
#define RUCHE_UPSAMPLE_HD
#endif

namespace ruche::ops {

// One axis of an upsampling: input and output sizes and the float scale of the mapping.
struct UpsampleAxis {
  std::int64_t in = 1, out = 1;
  float scale = 1;
  bool align_corners = false;  // bilinear only
  bool bilinear = false;
};

// given: the scale factor the caller gave (output / input), 0 when the sizes alone define it.
inline UpsampleAxis upsample_axis(std::int64_t in, std::int64_t out, float given,
                                  const UpsampleParams& p) {
  UpsampleAxis a;
  a.in = in;
  a.out = out;
  a.bilinear = p.mode == UpsampleMode::bilinear;
  a.align_corners = a.bilinear && p.align_corners;
  if (a.align_corners) {
    a.scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f;
  } else {
    a.scale = given > 0 ? static_cast<float>(1.0 / static_cast<double>(given))
                        : static_cast<float>(in) / static_cast<float>(out);
  }
  return a;
}

// nearest: floor(o * scale), at most in - 1.
RUCHE_UPSAMPLE_HD inline std::int64_t nearest_source(const UpsampleAxis& a, std::int64_t o) {
  const auto i = static_cast<std::int64_t>(floorf(static_cast<float>(o) * a.scale));
  return i < a.in - 1 ? i : a.in - 1;
}

// bilinear: the two inputs o reads (i1 == i0 at the last input) and their weights.
struct LinearTap {
  std::int64_t i0, i1;
  float l0, l1;
};

RUCHE_UPSAMPLE_HD inline LinearTap linear_source(const UpsampleAxis& a, std::int64_t o) {
  float src = a.align_corners ? a.scale * static_cast<float>(o)
                              : a.scale * (static_cast<float>(o) + 0.5f) - 0.5f;
  if (!a.align_corners && src < 0.0f) src = 0.0f;
  std::int64_t i0 = static_cast<std::int64_t>(floorf(src));
  if (i0 > a.in - 1) i0 = a.in - 1;
  float l1 = src - static_cast<float>(i0);
  l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
  const std::int64_t i1 = i0 < a.in - 1 ? i0 + 1 : i0;
  return {i0, i1, 1.0f - l1, l1};
}

}  // namespace ruche::ops
