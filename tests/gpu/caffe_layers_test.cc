// The CUDA ops of the Caffe-zoo layers (LRN both regions, softmax over an axis, Concat's block
// copies, Scale with its parameter sums, Power) against their CPU twins (norm-relative 1e-5).
#include <gtest/gtest.h>

#include <vector>

#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::empty_gpu;
using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

constexpr double kTol = 1e-5;

TEST(CudaCaffeOps, LrnMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{3, 11, 7, 5};
  const Tensor x = random_tensor(shape, 1, -2.0f, 2.0f), dy = random_tensor(shape, 2);
  for (ops::LrnRegion region : {ops::LrnRegion::across_channels, ops::LrnRegion::within_channel}) {
    for (int size : {3, 4, 5}) {
      ops::LrnParams p;
      p.region = region;
      p.size = size;
      p.alpha = 0.2f;
      p.beta = 0.75f;
      p.k = 1.5f;
      Tensor y = Tensor::empty(shape), s = Tensor::empty(shape), dx = Tensor::empty(shape);
      ops::lrn_forward(x, y, s, p);
      ops::lrn_backward(x, y, s, dy, dx, p);
      Tensor gx = on_gpu(x), gy = empty_gpu(shape), gs = empty_gpu(shape), gdx = empty_gpu(shape);
      ops::lrn_forward(gx, gy, gs, p);
      ops::lrn_backward(gx, gy, gs, on_gpu(dy), gdx, p);
      EXPECT_TENSORS_CLOSE(on_cpu(gy), y, kTol);
      EXPECT_TENSORS_CLOSE(on_cpu(gdx), dx, kTol);
    }
  }
}

TEST(CudaCaffeOps, SoftmaxAxisMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{4, 10, 6, 3};
  const Tensor x = random_tensor(shape, 3, -6.0f, 6.0f), dy = random_tensor(shape, 4);
  for (int axis : {0, 1, 3}) {
    Tensor y = Tensor::empty(shape), dx = Tensor::empty(shape);
    ops::softmax_axis_forward(x, y, axis);
    ops::softmax_axis_backward(y, dy, dx, axis);
    Tensor gy = empty_gpu(shape), gdx = empty_gpu(shape);
    ops::softmax_axis_forward(on_gpu(x), gy, axis);
    ops::softmax_axis_backward(gy, on_gpu(dy), gdx, axis);
    EXPECT_TENSORS_CLOSE(on_cpu(gy), y, kTol);
    EXPECT_TENSORS_CLOSE(on_cpu(gdx), dx, kTol);
  }
}

TEST(CudaCaffeOps, AxisCopiesMatchCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape whole_shape{3, 9, 4, 2}, part_shape{3, 4, 4, 2};
  const Tensor part = random_tensor(part_shape, 5), whole = random_tensor(whole_shape, 6);
  Tensor w = whole.clone(), p = Tensor::empty(part_shape);
  ops::copy_into_axis(part, w, 1, 3);
  ops::copy_from_axis(whole, p, 1, 5);
  Tensor gw = on_gpu(whole), gp = empty_gpu(part_shape);
  ops::copy_into_axis(on_gpu(part), gw, 1, 3);
  ops::copy_from_axis(on_gpu(whole), gp, 1, 5);
  EXPECT_EQ(on_cpu(gw).to_vector(), w.to_vector());
  EXPECT_EQ(on_cpu(gp).to_vector(), p.to_vector());
}

TEST(CudaCaffeOps, ChannelScaleMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{5, 16, 9, 7};
  const Tensor x = random_tensor(shape, 7), dy = random_tensor(shape, 8);
  const Tensor s = random_tensor({16}, 9), b = random_tensor({16}, 10);
  Tensor y = Tensor::empty(shape), dx = Tensor::empty(shape), ds = Tensor::empty({16}),
         db = Tensor::empty({16});
  ops::channel_scale_forward(x, s, b, y, 1);
  ops::channel_scale_backward(x, s, dy, dx, ds, db, 1);
  Tensor gy = empty_gpu(shape), gdx = empty_gpu(shape), gds = empty_gpu({16}),
         gdb = empty_gpu({16});
  const Tensor gs = on_gpu(s);
  ops::channel_scale_forward(on_gpu(x), gs, on_gpu(b), gy, 1);
  ops::channel_scale_backward(on_gpu(x), gs, on_gpu(dy), gdx, gds, gdb, 1);
  EXPECT_TENSORS_CLOSE(on_cpu(gy), y, kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gdx), dx, kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gds), ds, kTol);
  EXPECT_TENSORS_CLOSE(on_cpu(gdb), db, kTol);
}

TEST(CudaCaffeOps, PowerMatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{7, 33};
  const Tensor x = random_tensor(shape, 11, 0.1f, 3.0f), dy = random_tensor(shape, 12);
  for (float power : {0.0f, 1.0f, 2.0f, 0.75f, -1.5f}) {
    ops::PowerParams p;
    p.power = power;
    p.scale = 0.5f;
    p.shift = 1.0f;
    Tensor y = Tensor::empty(shape), dx = Tensor::empty(shape);
    ops::power_forward(x, y, p);
    ops::power_backward(x, dy, dx, p);
    Tensor gy = empty_gpu(shape), gdx = empty_gpu(shape);
    ops::power_forward(on_gpu(x), gy, p);
    ops::power_backward(on_gpu(x), on_gpu(dy), gdx, p);
    EXPECT_TENSORS_CLOSE(on_cpu(gy), y, kTol);
    if (power != 0.0f) {
      EXPECT_TENSORS_CLOSE(on_cpu(gdx), dx, kTol);
    }
  }
}

}  // namespace
}  // namespace ruche
