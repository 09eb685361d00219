// Inverted dropout: kept values are scaled by 1 / (1 - p) at training time, so inference is the
// identity. The mask comes from the counter-based stream, so it depends only on the stream and
// the element index (not on threads or devices) and backward can replay it from the stored mask.
// A blocked x (engine/tensor/layout.h) draws the same mask: each element's draw is keyed by its
// plain (NCHW) index, and y and the mask are written at its place in the blocked layout.
#include <cmath>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {
namespace {

void check_p(const char* op, float p) {
  RUCHE_REQUIRE(p >= 0.0f && p < 1.0f) << op << ": drop probability must be in [0, 1), got " << p;
}

// Where plain index i of a [N, C, H, W] tensor lies in `layout`.
struct BlockedPlace {
  std::int64_t c, h, w, block;
  std::int64_t operator()(std::int64_t i) const {
    if (block == 1) return i;
    const std::int64_t x = i % w, row = i / w, y = row % h, nc = row / h;
    const std::int64_t ch = nc % c, n = nc / c;
    return (((n * (c / block) + ch / block) * h + y) * w + x) * block + ch % block;
  }
};

BlockedPlace place_of(const Tensor& t) {
  if (t.is_plain()) return {1, 1, 1, 1};
  return {t.size(1), t.size(2), t.size(3), layout_block(t.layout())};
}

}  // namespace

void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, float p, const RngStream& stream) {
  const char* op = "dropout_forward";
  check_dense(op, "input", x);
  check_dense(op, "output", y);
  check_dense(op, "mask", mask, DType::u8);
  check_same_shape_as(op, "output", y, "input", x);
  check_same_shape_as(op, "mask", mask, "input", x);
  check_p(op, p);
  RUCHE_REQUIRE(x.layout() == y.layout() && mask.is_plain())
      << op << ": input " << x.str() << " and output " << y.str() << " in one layout, mask plain";
  const BlockedPlace place = place_of(x);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  std::uint8_t* pm = mask.data<std::uint8_t>();
  const float keep_scale = 1.0f / (1.0f - p);
  const std::int64_t n = x.numel();
  const std::int64_t blocks = (n + 3) / 4;
  // One Philox block gives the uniforms of four consecutive elements (rng_uniform's layout).
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const Philox4 r = rng_block(stream, static_cast<std::uint32_t>(b));
    for (std::int64_t j = 0; j < 4 && 4 * b + j < n; ++j) {
      const std::int64_t i = place(4 * b + j);
      const bool keep = bits_to_uniform(r.v[j]) >= p;
      pm[i] = keep ? 1 : 0;
      py[i] = keep ? px[i] * keep_scale : 0.0f;
    }
  }
}

void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, float p) {
  const char* op = "dropout_backward";
  check_dense(op, "dy", dy);
  check_dense(op, "mask", mask, DType::u8);
  check_dense(op, "dx", dx);
  check_same_shape_as(op, "mask", mask, "dy", dy);
  check_same_shape_as(op, "dx", dx, "dy", dy);
  check_p(op, p);
  RUCHE_REQUIRE(dy.layout() == dx.layout() && mask.is_plain())
      << op << ": dy " << dy.str() << " and dx " << dx.str() << " in one layout, mask plain";
  const float* pdy = dy.data<float>();
  const std::uint8_t* pm = mask.data<std::uint8_t>();
  float* pdx = dx.data<float>();
  const float keep_scale = 1.0f / (1.0f - p);
  const std::int64_t n = dy.numel();
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) pdx[i] = pm[i] ? pdy[i] * keep_scale : 0.0f;
}

}  // namespace ruche::ops::cpu
