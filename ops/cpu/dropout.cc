// Inverted dropout: kept values are scaled by 1 / (1 - p) at training time, so inference is the
// identity. The mask comes from the counter-based stream, so it depends only on the stream and
// the element index (not on threads or devices) and backward can replay it from the stored mask.
// A blocked x (engine/tensor/layout.h) draws the same mask: each element's draw is keyed by its
// plain (NCHW) index, and y and the mask are written at its place in the blocked layout, a tile
// of contiguous memory at a time.
#include <algorithm>
#include <cmath>

#include "ops/cpu/checks.h"
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {
namespace {

void check_p(const char* op, float p) {
  RUCHE_REQUIRE(p >= 0.0f && p < 1.0f) << op << ": drop probability must be in [0, 1), got " << p;
}

// The rows of W elements (plain index row * W on) of a [N, C, H, W] tensor in tiles that are
// contiguous in its layout: blocked, a tile is one (n, channel block, y), whose `block` rows (one
// per channel of the block) interleave in W * block floats; plain, a tile is a row of up to 4096.
struct RowTiles {
  std::int64_t c = 1, h = 1, w = 4096, block = 1;
  // Plain row k of tile t, and where its first element lies (the next ones step by `block`).
  std::int64_t row(std::int64_t t, std::int64_t k) const {
    if (block == 1) return t;
    const std::int64_t y = t % h, ncb = t / h, blocks = c / block;
    return ((ncb / blocks * c + ncb % blocks * block + k) * h + y);
  }
  std::int64_t start(std::int64_t t, std::int64_t k) const { return t * w * block + k; }
};

RowTiles row_tiles(const Tensor& t) {
  if (t.is_plain()) return {};
  return {t.size(1), t.size(2), t.size(3), channel_block(t.layout(), t.size(1))};
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
  const RowTiles tiles = row_tiles(x);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  std::uint8_t* pm = mask.data<std::uint8_t>();
  const float keep_scale = 1.0f / (1.0f - p);
  const std::int64_t n = x.numel(), w = tiles.w;
  const std::int64_t count = (n + w * tiles.block - 1) / (w * tiles.block);
  // One Philox block gives the uniforms of four consecutive plain elements (rng_uniform's
  // layout). A run of a row draws its blocks first, in a loop the compiler vectorizes, then
  // places the elements.
  constexpr std::int64_t kRun = 4096;
#pragma omp parallel for if (n >= kParallelMin)
  for (std::int64_t t = 0; t < count; ++t) {
    std::uint32_t bits[kRun + 8];
    for (std::int64_t k = 0; k < tiles.block; ++k) {
      const std::int64_t first = tiles.row(t, k) * w, at = tiles.start(t, k);
      const std::int64_t width = std::min(w, n - first);
      for (std::int64_t j0 = 0; j0 < width; j0 += kRun) {
        const std::int64_t begin = first + j0, len = std::min(kRun, width - j0);
        const std::int64_t b0 = begin / 4, b1 = (begin + len + 3) / 4;
        for (std::int64_t b = b0; b < b1; ++b) {
          const Philox4 r = rng_block(stream, static_cast<std::uint32_t>(b));
          for (int q = 0; q < 4; ++q) bits[4 * (b - b0) + q] = r.v[q];
        }
        const std::uint32_t* u = bits + (begin - 4 * b0);
        for (std::int64_t j = 0; j < len; ++j) {
          const std::int64_t o = at + (j0 + j) * tiles.block;
          const bool keep = bits_to_uniform(u[j]) >= p;
          pm[o] = keep ? 1 : 0;
          py[o] = keep ? px[o] * keep_scale : 0.0f;
        }
      }
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
