// The CUDA pooling kernels against their CPU twins on random inputs: max (values and argmax
// indices exactly, NaN propagation), average (ceil_mode, count_include_pad, padding), global
// average, their backward passes (which sum in the CPU's order), and the argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/pool_cases.h"

namespace ruche {
namespace {

using testing::empty_gpu;
using testing::on_cpu;
using testing::on_gpu;
using testing::pool_params;
using testing::PoolCase;
using testing::random_tensor;

// Forward windows are reduced in the CPU's order and the backward passes gather in the CPU's
// scatter order, so the results should be identical; 1e-6 (tighter than the usual 1e-5) leaves
// only room for a compiler's choice of instructions.
constexpr double kTol = 1e-6;

const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {"2x2 stride 2", {2, 3, 8, 8}, pool_params(2, 2, 2, 2, 0, 0)},
      {"3x3 stride 2 pad 1 (ResNet stem)", {2, 4, 17, 17}, pool_params(3, 3, 2, 2, 1, 1)},
      {"3x3 stride 2 ceil_mode odd", {1, 3, 13, 11}, pool_params(3, 3, 2, 2, 0, 0, true)},
      {"3x3 stride 2 pad 1 ceil_mode", {2, 2, 10, 9}, pool_params(3, 3, 2, 2, 1, 1, true)},
      {"3x3 stride 1 pad 1 exclude pad", {1, 5, 7, 6}, pool_params(3, 3, 1, 1, 1, 1, false, false)},
      {"3x2 stride 2x1 pad 1x0 ceil exclude pad",
       {3, 2, 9, 8},
       pool_params(3, 2, 2, 1, 1, 0, true, false)},
      {"2x2 stride 1 overlapping", {2, 3, 6, 7}, pool_params(2, 2, 1, 1, 0, 0)},
      {"4x4 stride 3 pad 2 ceil", {1, 2, 11, 12}, pool_params(4, 4, 3, 3, 2, 2, true)},
  };
  return cases;
}

TEST(CudaPooling, MaxPoolMatchesCpuWithSameIndices) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 1;
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(c.name);
    const Shape y_shape = ops::pool2d_output_shape(c.x, c.p);
    const Tensor x = random_tensor(c.x, seed++);
    const Tensor dy = random_tensor(y_shape, seed++);
    Tensor y = Tensor::empty(y_shape), idx = Tensor::empty(y_shape, DType::i32);
    ops::max_pool2d_forward(x, y, idx, c.p);
    Tensor y_gpu = empty_gpu(y_shape), idx_gpu = empty_gpu(y_shape, DType::i32);
    ops::max_pool2d_forward(on_gpu(x), y_gpu, idx_gpu, c.p);
    EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y, 0.0);
    EXPECT_EQ(idx_gpu.to_vector<std::int32_t>(), idx.to_vector<std::int32_t>());

    Tensor dx = Tensor::empty(c.x);
    ops::max_pool2d_backward(dy, idx, dx, c.p);
    Tensor dx_gpu = empty_gpu(c.x);
    dx_gpu.fill(7.0f);  // backward overwrites
    ops::max_pool2d_backward(on_gpu(dy), idx_gpu, dx_gpu, c.p);
    EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), dx, kTol);
  }
}

TEST(CudaPooling, MaxPoolPropagatesNanAndPicksTheFirstMaximum) {
  RUCHE_REQUIRE_CUDA();
  const ops::Pool2dParams p = pool_params(2, 2, 2, 2, 0, 0);
  // Window 0 holds a NaN after its maximum, window 1 a tie (the first wins), window 2 two NaNs.
  std::vector<float> v = {1.0f, 5.0f, 3.0f, 3.0f, 0.0f, 0.0f,  //
                          2.0f, NAN,  1.0f, 2.0f, NAN,  NAN};
  const Tensor x = Tensor::from_vector(v, {1, 1, 2, 6});
  Tensor y = Tensor::empty({1, 1, 1, 3}), idx = Tensor::empty({1, 1, 1, 3}, DType::i32);
  ops::max_pool2d_forward(x, y, idx, p);
  Tensor y_gpu = empty_gpu({1, 1, 1, 3}), idx_gpu = empty_gpu({1, 1, 1, 3}, DType::i32);
  ops::max_pool2d_forward(on_gpu(x), y_gpu, idx_gpu, p);
  const std::vector<std::int32_t> idx_cpu = idx.to_vector<std::int32_t>();
  EXPECT_EQ(idx_gpu.to_vector<std::int32_t>(), idx_cpu);
  EXPECT_EQ(idx_cpu, (std::vector<std::int32_t>{7, 2, 11}));
  const std::vector<float> got = y_gpu.to_vector<float>();
  EXPECT_TRUE(std::isnan(got[0]));
  EXPECT_EQ(got[1], 3.0f);
  EXPECT_TRUE(std::isnan(got[2]));
}

TEST(CudaPooling, AvgPoolMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 100;
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(c.name);
    const Shape y_shape = ops::pool2d_output_shape(c.x, c.p);
    const Tensor x = random_tensor(c.x, seed++);
    const Tensor dy = random_tensor(y_shape, seed++);
    Tensor y = Tensor::empty(y_shape);
    ops::avg_pool2d_forward(x, y, c.p);
    Tensor y_gpu = empty_gpu(y_shape);
    ops::avg_pool2d_forward(on_gpu(x), y_gpu, c.p);
    EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y, kTol);

    Tensor dx = Tensor::empty(c.x);
    ops::avg_pool2d_backward(dy, dx, c.p);
    Tensor dx_gpu = empty_gpu(c.x);
    dx_gpu.fill(7.0f);
    ops::avg_pool2d_backward(on_gpu(dy), dx_gpu, c.p);
    EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), dx, kTol);
  }
}

TEST(CudaPooling, GlobalAvgPoolMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  // A ResNet head (7x7), a large plane (56x56: the double sum), a 1x1 plane, odd sizes.
  const std::vector<Shape> shapes = {{4, 16, 7, 7}, {2, 3, 56, 56}, {3, 5, 1, 1}, {1, 7, 5, 3}};
  std::uint32_t seed = 200;
  for (const Shape& s : shapes) {
    SCOPED_TRACE(s.str());
    const Shape y_shape{s[0], s[1], 1, 1};
    const Tensor x = random_tensor(s, seed++);
    const Tensor dy = random_tensor(y_shape, seed++);
    Tensor y = Tensor::empty(y_shape);
    ops::global_avg_pool_forward(x, y);
    Tensor y_gpu = empty_gpu(y_shape);
    ops::global_avg_pool_forward(on_gpu(x), y_gpu);
    EXPECT_TENSORS_CLOSE(on_cpu(y_gpu), y, kTol);

    Tensor dx = Tensor::empty(s);
    ops::global_avg_pool_backward(dy, dx);
    Tensor dx_gpu = empty_gpu(s);
    ops::global_avg_pool_backward(on_gpu(dy), dx_gpu);
    EXPECT_TENSORS_CLOSE(on_cpu(dx_gpu), dx, kTol);
  }
}

TEST(CudaPooling, WrongShapesDtypesAndDevicesThrow) {
  RUCHE_REQUIRE_CUDA();
  const ops::Pool2dParams p = pool_params(2, 2, 2, 2, 0, 0);
  const Tensor x = Tensor::zeros({2, 3, 8, 8}, DType::f32, Device::cuda(0));
  Tensor y = empty_gpu({2, 3, 4, 4});
  Tensor idx = empty_gpu({2, 3, 4, 4}, DType::i32);
  Tensor dx = empty_gpu({2, 3, 8, 8});
  // The good calls work, so the throws below are the checks' doing.
  EXPECT_NO_THROW(ops::max_pool2d_forward(x, y, idx, p));
  EXPECT_NO_THROW(ops::max_pool2d_backward(y, idx, dx, p));
  EXPECT_NO_THROW(ops::avg_pool2d_forward(x, y, p));
  EXPECT_NO_THROW(ops::avg_pool2d_backward(y, dx, p));

  Tensor y_wrong = empty_gpu({2, 3, 4, 5});
  EXPECT_THROW(ops::max_pool2d_forward(x, y_wrong, idx, p), Error);
  EXPECT_THROW(ops::avg_pool2d_forward(x, y_wrong, p), Error);
  EXPECT_THROW(ops::avg_pool2d_backward(y_wrong, dx, p), Error);
  Tensor idx_f32 = empty_gpu({2, 3, 4, 4});
  EXPECT_THROW(ops::max_pool2d_forward(x, y, idx_f32, p), Error);
  Tensor idx_wrong = empty_gpu({2, 3, 4, 3}, DType::i32);
  EXPECT_THROW(ops::max_pool2d_backward(y, idx_wrong, dx, p), Error);
  EXPECT_THROW(
      ops::avg_pool2d_forward(Tensor::zeros({2, 3, 8, 8}, DType::bf16, Device::cuda(0)), y, p),
      Error);  // pooling is f32
  EXPECT_THROW(ops::avg_pool2d_forward(Tensor::zeros({3, 8, 8}, DType::f32, Device::cuda(0)), y, p),
               Error);  // not [N, C, H, W]
  ops::Pool2dParams too_much_pad = pool_params(2, 2, 2, 2, 2, 2);
  EXPECT_THROW(ops::avg_pool2d_forward(x, y, too_much_pad), Error);
  EXPECT_THROW(ops::max_pool2d_forward(on_cpu(x), y, idx, p), Error);  // mixed devices

  Tensor g = empty_gpu({2, 3, 1, 1});
  EXPECT_NO_THROW(ops::global_avg_pool_forward(x, g));
  Tensor g_wrong = empty_gpu({2, 3, 2, 1});
  EXPECT_THROW(ops::global_avg_pool_forward(x, g_wrong), Error);
  EXPECT_THROW(ops::global_avg_pool_backward(g_wrong, dx), Error);
}

}  // namespace
}  // namespace ruche
