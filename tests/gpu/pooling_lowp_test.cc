// bf16 and f16 in the CUDA pooling ops (the trainer's --precision bf16|fp16): each op against the
// f32 CPU op on the same inputs, rounded to 16 bits first and widened (exactly) for the CPU, and
// a mix of dtypes rejected.
//
// What must hold, and why. Max pooling compares and copies values, so on inputs that are exact in
// 16 bits its output and indices equal the CPU's exactly (bf16's coarse values make ties common:
// the first maximum must win, as on the CPU). Its backward adds dy in float in the CPU's order, so
// it is the CPU's f32 sum rounded once, bit for bit; so is the global average's backward (one IEEE
// division). The window and global averages are the CPU's f32 results (equal up to 1e-6 in
// pooling_test.cc) rounded once to nearest even, which moves a value by at most u = 2^-8 of it in
// bf16 (8 significant bits) and u = 2^-11 in f16 (11 bits): element by element |gpu - cpu| <=
// (u + 1e-6) |cpu| + 1e-6 max|cpu| (+ 2^-25, half of f16's subnormal spacing, where the relative
// bound does not hold), and norm-relative <= u + 1e-5.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/half_support.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"
#include "tests/support/pool_cases.h"

namespace ruche {
namespace {

using testing::cast_to;
using testing::empty_gpu;
using testing::expect_same_elements;
using testing::on_cpu;
using testing::on_gpu;
using testing::pool_params;
using testing::PoolCase;
using testing::random_tensor;
using testing::rounded_input;
using testing::rounded_once;
using testing::RoundedInput;
using testing::values_of;

struct LowPrecision {
  DType dtype;
  double u;  // unit roundoff of one rounding to nearest
  const char* name;
};

const LowPrecision kLowPrecisions[] = {
    {DType::bf16, 0x1p-8, "bf16"},
    {DType::f16, 0x1p-11, "f16"},
};

// A GPU tensor of dtype holding `value` everywhere (Tensor::fill is f32 only): the backward
// passes must overwrite it.
Tensor stale_gpu(const Shape& shape, DType dtype, float value = 7.0f) {
  Tensor t = Tensor::empty(shape);
  t.fill(value);
  return on_gpu(cast_to(t, dtype));
}

// An average against the CPU's f32 one: within one rounding element by element and in norm (see
// the top of the file).
void expect_one_rounding_from(const Tensor& actual, const Tensor& expected, double u) {
  EXPECT_TENSORS_CLOSE(actual, expected, u + 1e-5);
  ASSERT_TRUE(actual.shape() == expected.shape());
  const auto a = actual.to_vector<float>();
  const auto e = expected.to_vector<float>();
  double scale = 0;
  for (const float v : e) scale = std::fmax(scale, std::fabs(v));
  std::size_t outside = 0, first = 0;
  double first_bound = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double bound = (u + 1e-6) * std::fabs(e[i]) + 1e-6 * scale + 0x1p-25;
    if (!(std::fabs(static_cast<double>(a[i]) - e[i]) <= bound) && outside++ == 0) {
      first = i;
      first_bound = bound;
    }
  }
  if (outside == 0) return;
  ADD_FAILURE() << outside << " of " << a.size() << " elements off by more than one rounding, the "
                << "first at " << first << ": " << a[first] << " against " << e[first] << " (bound "
                << first_bound << ")";
}

// Overlapping windows (so a backward gather sums several outputs), padding, ceil_mode, both
// divisor rules.
const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {"2x2 stride 2", {2, 3, 8, 8}, pool_params(2, 2, 2, 2, 0, 0)},
      {"3x3 stride 2 pad 1 (ResNet stem)", {2, 8, 28, 28}, pool_params(3, 3, 2, 2, 1, 1)},
      {"3x3 stride 2 pad 1 ceil_mode", {2, 2, 10, 9}, pool_params(3, 3, 2, 2, 1, 1, true)},
      {"3x3 stride 1 pad 1 exclude pad", {1, 5, 7, 6}, pool_params(3, 3, 1, 1, 1, 1, false, false)},
      {"3x2 stride 2x1 pad 1x0 ceil exclude pad",
       {3, 2, 9, 8},
       pool_params(3, 2, 2, 1, 1, 0, true, false)},
      {"2x2 stride 1 overlapping", {2, 3, 6, 7}, pool_params(2, 2, 1, 1, 0, 0)},
  };
  return cases;
}

TEST(CudaPoolingLowPrecision, MaxPoolIsExactWithTheCpuIndices) {
  RUCHE_REQUIRE_CUDA();
  for (const auto& lp : kLowPrecisions) {
    std::uint32_t seed = 1;
    for (const PoolCase& c : pool_cases()) {
      SCOPED_TRACE(std::string(lp.name) + " " + c.name);
      const Shape y_shape = ops::pool2d_output_shape(c.x, c.p);
      const RoundedInput x = rounded_input(random_tensor(c.x, seed++), lp.dtype);
      const RoundedInput dy = rounded_input(random_tensor(y_shape, seed++), lp.dtype);
      Tensor y = Tensor::empty(y_shape), idx = Tensor::empty(y_shape, DType::i32);
      ops::max_pool2d_forward(x.cpu, y, idx, c.p);
      Tensor y_gpu = empty_gpu(y_shape, lp.dtype), idx_gpu = empty_gpu(y_shape, DType::i32);
      ops::max_pool2d_forward(x.gpu, y_gpu, idx_gpu, c.p);
      ASSERT_EQ(y_gpu.dtype(), lp.dtype);
      expect_same_elements(values_of(y_gpu), y);
      EXPECT_EQ(idx_gpu.to_vector<std::int32_t>(), idx.to_vector<std::int32_t>());

      Tensor dx = Tensor::empty(c.x);
      ops::max_pool2d_backward(dy.cpu, idx, dx, c.p);
      Tensor dx_gpu = stale_gpu(c.x, lp.dtype);
      ops::max_pool2d_backward(dy.gpu, idx_gpu, dx_gpu, c.p);
      expect_same_elements(values_of(dx_gpu), rounded_once(dx, lp.dtype));
    }
  }
}

TEST(CudaPoolingLowPrecision, MaxPoolPropagatesNanAndPicksTheFirstMaximum) {
  RUCHE_REQUIRE_CUDA();
  const ops::Pool2dParams p = pool_params(2, 2, 2, 2, 0, 0);
  // Window 0 holds a NaN after its maximum, window 1 a tie (the first wins), window 2 two NaNs;
  // all exact in 16 bits.
  const std::vector<float> v = {1.0f, 5.0f, 3.0f, 3.0f, 0.0f, 0.0f,  //
                                2.0f, NAN,  1.0f, 2.0f, NAN,  NAN};
  const Tensor x = Tensor::from_vector(v, {1, 1, 2, 6});
  for (const auto& lp : kLowPrecisions) {
    SCOPED_TRACE(lp.name);
    Tensor y_gpu = empty_gpu({1, 1, 1, 3}, lp.dtype), idx_gpu = empty_gpu({1, 1, 1, 3}, DType::i32);
    ops::max_pool2d_forward(on_gpu(cast_to(x, lp.dtype)), y_gpu, idx_gpu, p);
    EXPECT_EQ(idx_gpu.to_vector<std::int32_t>(), (std::vector<std::int32_t>{7, 2, 11}));
    const std::vector<float> got = values_of(y_gpu).to_vector<float>();
    EXPECT_TRUE(std::isnan(got[0]));
    EXPECT_EQ(got[1], 3.0f);
    EXPECT_TRUE(std::isnan(got[2]));
  }
}

TEST(CudaPoolingLowPrecision, AvgPoolWithinOneRoundingOfCpu) {
  RUCHE_REQUIRE_CUDA();
  for (const auto& lp : kLowPrecisions) {
    std::uint32_t seed = 100;
    for (const PoolCase& c : pool_cases()) {
      SCOPED_TRACE(std::string(lp.name) + " " + c.name);
      const Shape y_shape = ops::pool2d_output_shape(c.x, c.p);
      const RoundedInput x = rounded_input(random_tensor(c.x, seed++), lp.dtype);
      const RoundedInput dy = rounded_input(random_tensor(y_shape, seed++), lp.dtype);
      Tensor y = Tensor::empty(y_shape);
      ops::avg_pool2d_forward(x.cpu, y, c.p);
      Tensor y_gpu = empty_gpu(y_shape, lp.dtype);
      ops::avg_pool2d_forward(x.gpu, y_gpu, c.p);
      ASSERT_EQ(y_gpu.dtype(), lp.dtype);
      expect_one_rounding_from(values_of(y_gpu), y, lp.u);

      Tensor dx = Tensor::empty(c.x);
      ops::avg_pool2d_backward(dy.cpu, dx, c.p);
      Tensor dx_gpu = stale_gpu(c.x, lp.dtype);
      ops::avg_pool2d_backward(dy.gpu, dx_gpu, c.p);
      expect_one_rounding_from(values_of(dx_gpu), dx, lp.u);
    }
  }
}

TEST(CudaPoolingLowPrecision, GlobalAvgPoolWithinOneRoundingOfCpu) {
  RUCHE_REQUIRE_CUDA();
  // A ResNet head (7x7), a large plane (56x56: the double sum), a 1x1 plane, odd sizes.
  const std::vector<Shape> shapes = {{4, 16, 7, 7}, {2, 3, 56, 56}, {3, 5, 1, 1}, {1, 7, 5, 3}};
  for (const auto& lp : kLowPrecisions) {
    std::uint32_t seed = 200;
    for (const Shape& s : shapes) {
      SCOPED_TRACE(std::string(lp.name) + " " + s.str());
      const Shape y_shape{s[0], s[1], 1, 1};
      // Positive inputs keep the averages away from 0, where one rounding is far below u of the
      // inputs' scale and the test would see little; a second, signed draw covers cancellation.
      for (const float low : {0.5f, -1.0f}) {
        const RoundedInput x = rounded_input(random_tensor(s, seed++, low, 1.0f), lp.dtype);
        Tensor y = Tensor::empty(y_shape);
        ops::global_avg_pool_forward(x.cpu, y);
        Tensor y_gpu = empty_gpu(y_shape, lp.dtype);
        ops::global_avg_pool_forward(x.gpu, y_gpu);
        ASSERT_EQ(y_gpu.dtype(), lp.dtype);
        expect_one_rounding_from(values_of(y_gpu), y, lp.u);
      }

      const RoundedInput dy = rounded_input(random_tensor(y_shape, seed++), lp.dtype);
      Tensor dx = Tensor::empty(s);
      ops::global_avg_pool_backward(dy.cpu, dx);
      Tensor dx_gpu = stale_gpu(s, lp.dtype);
      ops::global_avg_pool_backward(dy.gpu, dx_gpu);
      expect_same_elements(values_of(dx_gpu), rounded_once(dx, lp.dtype));
    }
  }
}

// `message` names `op` (so the error says which call was wrong).
void expect_error_naming(const std::string& message, const std::string& op) {
  EXPECT_NE(message.find(op), std::string::npos) << "message: \"" << message << "\"";
}

TEST(CudaPoolingLowPrecision, MixedOrNonFloatingDtypesThrow) {
  RUCHE_REQUIRE_CUDA();
  using testing::error_of;
  const ops::Pool2dParams p = pool_params(2, 2, 2, 2, 0, 0);
  const Shape xs{2, 3, 8, 8}, ys{2, 3, 4, 4}, gs{2, 3, 1, 1};
  const auto zeros = [](const Shape& s, DType t) { return Tensor::zeros(s, t, Device::cuda(0)); };
  const Tensor x = zeros(xs, DType::bf16), x_f16 = zeros(xs, DType::f16);
  Tensor y = empty_gpu(ys, DType::bf16), y_f16 = empty_gpu(ys, DType::f16);
  Tensor y_f32 = empty_gpu(ys, DType::f32), idx = empty_gpu(ys, DType::i32);
  Tensor dx = empty_gpu(xs, DType::bf16), dx_f16 = empty_gpu(xs, DType::f16);
  Tensor g = empty_gpu(gs, DType::bf16), g_f16 = empty_gpu(gs, DType::f16);
  // The good calls work, so the throws below are the checks' doing.
  EXPECT_NO_THROW(ops::max_pool2d_forward(x, y, idx, p));
  EXPECT_NO_THROW(ops::max_pool2d_backward(y, idx, dx, p));
  EXPECT_NO_THROW(ops::avg_pool2d_forward(x_f16, y_f16, p));
  EXPECT_NO_THROW(ops::avg_pool2d_backward(y_f16, dx_f16, p));
  EXPECT_NO_THROW(ops::global_avg_pool_forward(x, g));
  EXPECT_NO_THROW(ops::global_avg_pool_backward(g, dx));

  expect_error_naming(error_of([&] { ops::max_pool2d_forward(x, y_f16, idx, p); }),
                      "max_pool2d_forward");
  expect_error_naming(error_of([&] { ops::max_pool2d_forward(x_f16, y_f32, idx, p); }),
                      "max_pool2d_forward");
  expect_error_naming(error_of([&] { ops::max_pool2d_backward(y_f16, idx, dx, p); }),
                      "max_pool2d_backward");
  expect_error_naming(error_of([&] { ops::avg_pool2d_forward(x, y_f32, p); }),
                      "avg_pool2d_forward");
  expect_error_naming(error_of([&] { ops::avg_pool2d_backward(y, dx_f16, p); }),
                      "avg_pool2d_backward");
  expect_error_naming(error_of([&] { ops::global_avg_pool_forward(x_f16, g); }),
                      "global_avg_pool_forward");
  expect_error_naming(error_of([&] { ops::global_avg_pool_backward(g_f16, dx); }),
                      "global_avg_pool_backward");
  // Indices stay i32 whatever the data; data are floating.
  Tensor idx_bf16 = empty_gpu(ys, DType::bf16);
  expect_error_naming(error_of([&] { ops::max_pool2d_forward(x, y, idx_bf16, p); }),
                      "max_pool2d_forward");
  Tensor x_i32 = zeros(xs, DType::i32), y_i32 = empty_gpu(ys, DType::i32);
  expect_error_naming(error_of([&] { ops::avg_pool2d_forward(x_i32, y_i32, p); }),
                      "avg_pool2d_forward");
}

}  // namespace
}  // namespace ruche
