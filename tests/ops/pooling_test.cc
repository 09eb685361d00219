// Pooling: PyTorch references (values, argmax indices, gradients; padding, ceil_mode,
// count_include_pad), finite-difference gradients, shapes and errors.
#include <gtest/gtest.h>

#include <string>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

ops::Pool2dParams params_of(const Tensor& t) {
  const auto v = t.to_vector<std::int32_t>();
  ops::Pool2dParams p;
  p.kernel_h = v[0], p.kernel_w = v[1], p.stride_h = v[2], p.stride_w = v[3];
  p.pad_h = v[4], p.pad_w = v[5], p.ceil_mode = v[6] != 0, p.count_include_pad = v[7] != 0;
  return p;
}

ops::Pool2dParams make_params(int k, int s, int pad, bool ceil_mode, bool include_pad = true) {
  ops::Pool2dParams p;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = s;
  p.pad_h = p.pad_w = pad;
  p.ceil_mode = ceil_mode;
  p.count_include_pad = include_pad;
  return p;
}

// Distinct values 0.05 apart in a scrambled order: a +-1e-2 probe never changes a window's argmax.
Tensor tie_free_input(const Shape& shape) {
  Tensor x = Tensor::empty(shape);
  const std::int64_t n = x.numel();
  float* p = x.data<float>();
  for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<float>((i * 7919) % n) * 0.05f - 1.0f;
  return x;
}

class MaxPoolReference : public ::testing::TestWithParam<std::string> {};

TEST_P(MaxPoolReference, MatchesTorch) {
  const std::string c = "pool_max_" + GetParam();
  const ops::Pool2dParams p = params_of(reference(c, "params"));
  const Tensor x = reference(c, "x");
  const Tensor y_ref = reference(c, "y");
  ASSERT_EQ(ops::pool2d_output_shape(x.shape(), p), y_ref.shape());
  Tensor y = Tensor::empty(y_ref.shape());
  Tensor indices = Tensor::empty(y_ref.shape(), DType::i32);
  ops::max_pool2d_forward(x, y, indices, p);
  EXPECT_TENSORS_CLOSE(y, y_ref, 1e-5);
  EXPECT_EQ(indices.to_vector<std::int32_t>(), reference(c, "indices").to_vector<std::int32_t>());
  Tensor dx = Tensor::empty(x.shape());
  ops::max_pool2d_backward(reference(c, "dy"), indices, dx, p);
  EXPECT_TENSORS_CLOSE(dx, reference(c, "dx"), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Pooling, MaxPoolReference,
                         ::testing::Values("k2s2", "k3s2p1_odd", "k3s2p1_ceil", "k2s2_ceil_odd",
                                           "k3x2_s2x1_p1x0", "k2s2p1_ceil_drop"));

class AvgPoolReference : public ::testing::TestWithParam<std::string> {};

TEST_P(AvgPoolReference, MatchesTorch) {
  const std::string c = "pool_avg_" + GetParam();
  const ops::Pool2dParams p = params_of(reference(c, "params"));
  const Tensor x = reference(c, "x");
  const Tensor y_ref = reference(c, "y");
  ASSERT_EQ(ops::pool2d_output_shape(x.shape(), p), y_ref.shape());
  Tensor y = Tensor::empty(y_ref.shape());
  ops::avg_pool2d_forward(x, y, p);
  EXPECT_TENSORS_CLOSE(y, y_ref, 1e-5);
  Tensor dx = Tensor::empty(x.shape());
  ops::avg_pool2d_backward(reference(c, "dy"), dx, p);
  EXPECT_TENSORS_CLOSE(dx, reference(c, "dx"), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Pooling, AvgPoolReference,
                         ::testing::Values("k3s2p1_incl", "k3s2p1_excl", "k3s2p1_ceil_incl",
                                           "k3s2p1_ceil_excl", "k2s2_ceil_odd",
                                           "k3x2_s2x1_p1x0_excl", "k2s2p1_ceil_drop_incl"));

TEST(GlobalAvgPool, MatchesTorch) {
  const Tensor x = reference("pool_global_avg", "x");
  Tensor y = Tensor::empty({x.size(0), x.size(1), 1, 1});
  ops::global_avg_pool_forward(x, y);
  EXPECT_TENSORS_CLOSE(y, reference("pool_global_avg", "y"), 1e-5);
  Tensor dx = Tensor::empty(x.shape());
  ops::global_avg_pool_backward(reference("pool_global_avg", "dy"), dx);
  EXPECT_TENSORS_CLOSE(dx, reference("pool_global_avg", "dx"), 1e-5);
}

void check_max_pool_gradient(const Shape& shape, const ops::Pool2dParams& p) {
  const Shape out = ops::pool2d_output_shape(shape, p);
  auto forward = [&](std::vector<Tensor>& in) {
    Tensor y = Tensor::empty(out), idx = Tensor::empty(out, DType::i32);
    ops::max_pool2d_forward(in[0], y, idx, p);
    return y;
  };
  auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
    Tensor y = Tensor::empty(out), idx = Tensor::empty(out, DType::i32);
    ops::max_pool2d_forward(in[0], y, idx, p);
    Tensor dx = Tensor::empty(shape);
    ops::max_pool2d_backward(dy, idx, dx, p);
    return std::vector<Tensor>{dx};
  };
  testing::expect_gradients_match({tie_free_input(shape)}, forward, backward, {0});
}

void check_avg_pool_gradient(const Shape& shape, const ops::Pool2dParams& p) {
  const Shape out = ops::pool2d_output_shape(shape, p);
  auto forward = [&](std::vector<Tensor>& in) {
    Tensor y = Tensor::empty(out);
    ops::avg_pool2d_forward(in[0], y, p);
    return y;
  };
  auto backward = [&](std::vector<Tensor>&, const Tensor& dy) {
    Tensor dx = Tensor::empty(shape);
    ops::avg_pool2d_backward(dy, dx, p);
    return std::vector<Tensor>{dx};
  };
  testing::expect_gradients_match({testing::random_tensor(shape, 1)}, forward, backward, {0});
}

TEST(MaxPool, GradientMatchesFiniteDifferences) {
  check_max_pool_gradient({2, 3, 7, 9}, make_params(2, 2, 0, false));
  check_max_pool_gradient({2, 3, 7, 9}, make_params(3, 2, 1, false));
  check_max_pool_gradient({2, 3, 7, 9}, make_params(3, 2, 1, true));
  check_max_pool_gradient({1, 2, 5, 6}, make_params(2, 2, 1, true));
}

TEST(AvgPool, GradientMatchesFiniteDifferences) {
  for (bool include_pad : {true, false}) {
    SCOPED_TRACE(include_pad ? "count_include_pad" : "exclude pad");
    check_avg_pool_gradient({2, 3, 7, 9}, make_params(3, 2, 1, false, include_pad));
    check_avg_pool_gradient({2, 3, 8, 9}, make_params(3, 2, 1, true, include_pad));
    check_avg_pool_gradient({1, 2, 5, 6}, make_params(2, 2, 1, true, include_pad));
  }
}

TEST(GlobalAvgPool, GradientMatchesFiniteDifferences) {
  const Shape shape{2, 3, 5, 7};
  auto forward = [&](std::vector<Tensor>& in) {
    Tensor y = Tensor::empty({2, 3, 1, 1});
    ops::global_avg_pool_forward(in[0], y);
    return y;
  };
  auto backward = [&](std::vector<Tensor>&, const Tensor& dy) {
    Tensor dx = Tensor::empty(shape);
    ops::global_avg_pool_backward(dy, dx);
    return std::vector<Tensor>{dx};
  };
  testing::expect_gradients_match({testing::random_tensor(shape, 2)}, forward, backward, {0});
}

TEST(Pool2dOutputShape, FloorCeilAndTheDroppedWindow) {
  EXPECT_EQ(ops::pool2d_output_shape({1, 1, 7, 7}, make_params(2, 2, 0, false)),
            (Shape{1, 1, 3, 3}));
  EXPECT_EQ(ops::pool2d_output_shape({1, 1, 7, 7}, make_params(2, 2, 0, true)),
            (Shape{1, 1, 4, 4}));
  // ceil_mode gives 4 windows on 5 rows with padding 1, but the 4th would start in the padding.
  EXPECT_EQ(ops::pool2d_output_shape({1, 1, 5, 5}, make_params(2, 2, 1, true)),
            (Shape{1, 1, 3, 3}));
}

template <typename F>
void expect_error_containing(F f, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "expected a ruche::Error containing '" << text << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(Pooling, ClearErrors) {
  const ops::Pool2dParams p = make_params(2, 2, 0, false);
  Tensor x = Tensor::zeros({1, 2, 6, 6});
  Tensor y = Tensor::zeros({1, 2, 4, 4});
  Tensor idx = Tensor::zeros({1, 2, 4, 4}, DType::i32);
  expect_error_containing([&] { ops::max_pool2d_forward(x, y, idx, p); },
                          "max_pool2d_forward: output has shape [1, 2, 4, 4] but input [1, 2, 6, "
                          "6] with kernel 2x2 stride 2x2 padding 0x0 gives [1, 2, 3, 3]");
  Tensor y3 = Tensor::zeros({1, 2, 3, 3});
  Tensor idx_f32 = Tensor::zeros({1, 2, 3, 3});
  expect_error_containing([&] { ops::max_pool2d_forward(x, y3, idx_f32, p); },
                          "max_pool2d_forward: indices must be i32");
  expect_error_containing([&] { ops::avg_pool2d_forward(x, y, p); }, "avg_pool2d_forward");
  expect_error_containing(
      [&] {
        ops::pool2d_output_shape({1, 1, 6, 6}, make_params(2, 2, 2, false));
      },
      "padding 2x2 must be between 0 and half the kernel");
  expect_error_containing(
      [&] {
        ops::pool2d_output_shape({1, 1, 2, 2}, make_params(3, 1, 0, false));
      },
      "larger than the padded input");
  expect_error_containing([&] { ops::pool2d_output_shape({2, 6, 6}, p); }, "[N, C, H, W]");
  expect_error_containing([&] { ops::global_avg_pool_forward(x, y); },
                          "global_avg_pool_forward: output has shape [1, 2, 4, 4]");
}

}  // namespace
}  // namespace ruche
