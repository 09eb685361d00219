// Channels-last (Layout::nhwc) data in the CUDA pooling and dropout ops, f32 and bf16: each op on
// nhwc tensors against the same op on the plain tensors holding the same elements, compared
// element by element at the same (n, c, h, w), bit for bit. Both layouts run the same arithmetic
// in the same order (the windows and the backward gathers walk (h, w) alike; dropout keys each
// draw by the plain index), so any difference is an indexing error.
// Max pooling's indices and dropout's mask are tagged plain but lie as the data do (the CPU's rule
// for its blocked layouts): the nhwc run's indices at y's nhwc offset of (n, c, oh, ow) hold what
// the plain run's hold at its plain offset; dropout's mask also equals the CPU op's on nhwc f32.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/rng/philox.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/half_support.h"
#include "tests/gpu/nhwc_support.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"
#include "tests/support/pool_cases.h"

namespace ruche {
namespace {

using testing::cast_to;
using testing::empty_gpu;
using testing::expect_same_at_every_element;
using testing::internal_error_of;
using testing::nhwc_on_gpu;
using testing::on_cpu;
using testing::on_gpu;
using testing::permuted;
using testing::pool_params;
using testing::PoolCase;
using testing::random_tensor;

const DType kDTypes[] = {DType::f32, DType::bf16};

// Odd channel counts and planes, overlapping windows (the backward gathers sum several outputs),
// padding, ceil_mode, both divisor rules.
const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {"2x2 stride 2", {2, 3, 8, 8}, pool_params(2, 2, 2, 2, 0, 0)},
      {"3x3 stride 2 pad 1 (ResNet stem)", {2, 64, 17, 17}, pool_params(3, 3, 2, 2, 1, 1)},
      {"3x3 stride 2 pad 1 ceil_mode", {2, 5, 10, 9}, pool_params(3, 3, 2, 2, 1, 1, true)},
      {"3x3 stride 1 pad 1 exclude pad", {1, 7, 7, 6}, pool_params(3, 3, 1, 1, 1, 1, false, false)},
      {"3x2 stride 2x1 pad 1x0 ceil exclude pad",
       {3, 2, 9, 8},
       pool_params(3, 2, 2, 1, 1, 0, true, false)},
      {"2x2 stride 1 overlapping, one channel", {2, 1, 6, 7}, pool_params(2, 2, 1, 1, 0, 0)},
  };
  return cases;
}

// A pooling case's data in one dtype: x and dy on the CPU (plain), rounded to dtype.
struct PoolData {
  Tensor x, dy;
};
PoolData pool_data(const PoolCase& c, DType dtype, std::uint32_t seed) {
  const Shape y_shape = ops::pool2d_output_shape(c.x, c.p);
  return {cast_to(random_tensor(c.x, seed), dtype),
          cast_to(random_tensor(y_shape, seed + 1), dtype)};
}

// A GPU tensor of dtype in `layout`, holding 7 everywhere: the ops must overwrite it all.
Tensor stale_gpu(const Shape& shape, DType dtype, Layout layout) {
  Tensor t = Tensor::empty(shape);
  t.fill(7.0f);
  return on_gpu(cast_to(t, dtype)).with_layout(layout);
}

TEST(CudaPoolingNhwc, MaxPoolMatchesPlainWithIndicesLaidOutAsY) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 11;
  for (const DType dtype : kDTypes) {
    for (const PoolCase& c : pool_cases()) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + c.name);
      const PoolData data = pool_data(c, dtype, seed += 2);
      const Shape y_shape = data.dy.shape();
      Tensor y = empty_gpu(y_shape, dtype), idx = empty_gpu(y_shape, DType::i32);
      ops::max_pool2d_forward(on_gpu(data.x), y, idx, c.p);
      Tensor y_nhwc = stale_gpu(y_shape, dtype, Layout::nhwc);
      Tensor idx_nhwc = empty_gpu(y_shape, DType::i32);  // tagged plain, as the layer allocates it
      ops::max_pool2d_forward(nhwc_on_gpu(data.x), y_nhwc, idx_nhwc, c.p);
      expect_same_at_every_element<float>(y_nhwc, y, "max pool output");
      expect_same_at_every_element<std::int32_t>(idx_nhwc, idx, "max pool indices (h * W + w)");

      Tensor dx = stale_gpu(c.x, dtype, Layout::plain);
      ops::max_pool2d_backward(on_gpu(data.dy), idx, dx, c.p);
      Tensor dx_nhwc = stale_gpu(c.x, dtype, Layout::nhwc);
      ops::max_pool2d_backward(nhwc_on_gpu(data.dy), idx_nhwc, dx_nhwc, c.p);
      expect_same_at_every_element<float>(dx_nhwc, dx, "max pool dx");
    }
  }
}

TEST(CudaPoolingNhwc, AvgPoolMatchesPlain) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 41;
  for (const DType dtype : kDTypes) {
    for (const PoolCase& c : pool_cases()) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + c.name);
      const PoolData data = pool_data(c, dtype, seed += 2);
      const Shape y_shape = data.dy.shape();
      Tensor y = empty_gpu(y_shape, dtype);
      ops::avg_pool2d_forward(on_gpu(data.x), y, c.p);
      Tensor y_nhwc = stale_gpu(y_shape, dtype, Layout::nhwc);
      ops::avg_pool2d_forward(nhwc_on_gpu(data.x), y_nhwc, c.p);
      expect_same_at_every_element<float>(y_nhwc, y, "avg pool output");

      Tensor dx = stale_gpu(c.x, dtype, Layout::plain);
      ops::avg_pool2d_backward(on_gpu(data.dy), dx, c.p);
      Tensor dx_nhwc = stale_gpu(c.x, dtype, Layout::nhwc);
      ops::avg_pool2d_backward(nhwc_on_gpu(data.dy), dx_nhwc, c.p);
      expect_same_at_every_element<float>(dx_nhwc, dx, "avg pool dx");
    }
  }
}

TEST(CudaDropoutNhwc, DrawsThePlainMaskAtEachElement) {
  RUCHE_REQUIRE_CUDA();
  const RngStream stream{4242, RngPurpose::dropout, 1, 17, 3};
  // A plane of 63 (not a multiple of the 4 words of a Philox block) and a ResNet-sized one.
  for (const Shape& shape : {Shape{2, 5, 7, 9}, Shape{4, 64, 28, 28}}) {
    for (const DType dtype : kDTypes) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape.str());
      const float p = 0.3f;
      const Tensor x = cast_to(random_tensor(shape, 5), dtype);
      const Tensor dy = cast_to(random_tensor(shape, 6), dtype);
      Tensor y = empty_gpu(shape, dtype), mask = empty_gpu(shape, DType::u8);
      ops::dropout_forward(on_gpu(x), y, mask, p, stream);
      Tensor y_nhwc = stale_gpu(shape, dtype, Layout::nhwc);
      Tensor mask_nhwc = empty_gpu(shape, DType::u8);  // tagged plain, as the layer allocates it
      ops::dropout_forward(nhwc_on_gpu(x), y_nhwc, mask_nhwc, p, stream);
      expect_same_at_every_element<std::uint8_t>(mask_nhwc, mask, "dropout mask");
      expect_same_at_every_element<float>(y_nhwc, y, "dropout output");

      // In place, as the layer runs it.
      Tensor xy = nhwc_on_gpu(x);
      Tensor mask_in_place = empty_gpu(shape, DType::u8);
      ops::dropout_forward(xy, xy, mask_in_place, p, stream);
      expect_same_at_every_element<float>(xy, y, "dropout output in place");

      Tensor dx = stale_gpu(shape, dtype, Layout::plain);
      ops::dropout_backward(on_gpu(dy), mask, dx, p);
      Tensor dx_nhwc = stale_gpu(shape, dtype, Layout::nhwc);
      ops::dropout_backward(nhwc_on_gpu(dy), mask_nhwc, dx_nhwc, p);
      expect_same_at_every_element<float>(dx_nhwc, dx, "dropout dx");

      if (dtype != DType::f32) continue;
      // The CPU op on the same nhwc f32 x writes the same mask bytes (a mask moves between
      // devices as it is).
      Tensor y_cpu = Tensor::empty(shape).with_layout(Layout::nhwc);
      Tensor mask_cpu = Tensor::empty(shape, DType::u8);
      ops::dropout_forward(permuted(x, true).with_layout(Layout::nhwc), y_cpu, mask_cpu, p, stream);
      const auto gpu_bytes = on_cpu(mask_nhwc).to_vector<std::uint8_t>();
      const auto cpu_bytes = mask_cpu.to_vector<std::uint8_t>();
      std::size_t differ = 0;
      for (std::size_t m = 0; m < gpu_bytes.size(); ++m) differ += gpu_bytes[m] != cpu_bytes[m];
      EXPECT_EQ(differ, 0u) << "the CUDA and the CPU dropout on nhwc f32 wrote different mask "
                               "bytes (compared at each memory offset)";
    }
  }
}

TEST(CudaPoolingNhwc, MixedOrCpuLayoutsAreRejected) {
  RUCHE_REQUIRE_CUDA();
  const ops::Pool2dParams p = pool_params(2, 2, 2, 2, 0, 0);
  const Tensor x = empty_gpu({1, 8, 4, 4}, DType::bf16);
  Tensor y = empty_gpu({1, 8, 2, 2}, DType::bf16).with_layout(Layout::nhwc);
  Tensor idx = empty_gpu({1, 8, 2, 2}, DType::i32);
  const std::string mixed = internal_error_of([&] { ops::max_pool2d_forward(x, y, idx, p); });
  EXPECT_NE(mixed.find("max_pool2d_forward: input bf16[1, 8, 4, 4]"), std::string::npos)
      << "a plain input with an nhwc output must be refused, naming both; got: " << mixed;
  EXPECT_NE(mixed.find("in different layouts"), std::string::npos) << mixed;
  const Tensor blocked = x.with_layout(Layout::nChw8c);
  const std::string cpu = internal_error_of([&] { ops::avg_pool2d_forward(blocked, y, p); });
  EXPECT_NE(cpu.find("CPU layout"), std::string::npos)
      << "a CPU-only blocked layout must be refused; got: " << cpu;
}

TEST(CudaDropoutNhwc, MixedLayoutsOrAnNhwcTaggedMaskAreRejected) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{1, 8, 4, 4};
  const Tensor x = empty_gpu(shape, DType::bf16).with_layout(Layout::nhwc);
  Tensor plain = empty_gpu(shape, DType::bf16), mask = empty_gpu(shape, DType::u8);
  const RngStream stream{1, RngPurpose::dropout, 0, 0, 0};
  testing::expect_error([&] { ops::dropout_forward(x, plain, mask, 0.5f, stream); },
                        {"dropout_forward: x", "must share a layout"});
  Tensor nhwc_mask = empty_gpu(shape, DType::u8).with_layout(Layout::nhwc);
  Tensor dx = empty_gpu(shape, DType::bf16).with_layout(Layout::nhwc);
  testing::expect_error([&] { ops::dropout_backward(x, nhwc_mask, dx, 0.5f); },
                        {"dropout_backward: dy", "mask is u8[1, 8, 4, 4] nhwc"});
}

}  // namespace
}  // namespace ruche
