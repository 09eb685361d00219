// conv2d: PyTorch references (stride, padding, dilation, groups, depthwise, bias or none),
// finite-difference gradients of x, w and b on varied shapes, the primitive cache, and errors.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "ops/cuda/conv_choice.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::random_tensor;
using testing::reference;

ops::Conv2dParams params_of(const Tensor& t) {
  const auto v = t.to_vector<std::int32_t>();
  ops::Conv2dParams p;
  p.stride_h = v[0], p.stride_w = v[1], p.pad_h = v[2], p.pad_w = v[3];
  p.dilation_h = v[4], p.dilation_w = v[5], p.groups = v[6];
  return p;
}

class ConvReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ConvReference, MatchesTorch) {
  const std::string c = GetParam();
  const Tensor params = reference(c, "params");
  const ops::Conv2dParams p = params_of(params);
  const bool bias = params.to_vector<std::int32_t>()[7] != 0;
  const Tensor x = reference(c, "x"), w = reference(c, "w"), dy = reference(c, "dy");
  const Tensor b = bias ? reference(c, "b") : Tensor();
  const Tensor y_ref = reference(c, "y");
  ASSERT_EQ(ops::conv2d_output_shape(x.shape(), w.shape(), p), y_ref.shape());

  Tensor y = Tensor::empty(y_ref.shape());
  ops::conv2d_forward(x, w, b, y, p);
  EXPECT_TENSORS_CLOSE(y, y_ref, 1e-5);
  Tensor dx = Tensor::empty(x.shape());
  ops::conv2d_backward_data(dy, w, dx, p);
  EXPECT_TENSORS_CLOSE(dx, reference(c, "dx"), 1e-5);
  Tensor dw = Tensor::empty(w.shape());
  Tensor db = bias ? Tensor::empty(b.shape()) : Tensor();
  ops::conv2d_backward_weights(x, dy, dw, db, p);
  EXPECT_TENSORS_CLOSE(dw, reference(c, "dw"), 1e-5);
  if (bias) {
    EXPECT_TENSORS_CLOSE(db, reference(c, "db"), 1e-5);
  }

  // A second call hits the cache with other buffers: the handles must follow the new tensors.
  Tensor y2 = Tensor::zeros(y_ref.shape());
  ops::conv2d_forward(x.clone(), w.clone(), bias ? b.clone() : Tensor(), y2, p);
  EXPECT_TENSORS_CLOSE(y2, y_ref, 1e-5);
  Tensor dw2 = Tensor::zeros(w.shape());
  ops::conv2d_backward_weights(x.clone(), dy.clone(), dw2, db, p);
  EXPECT_TENSORS_CLOSE(dw2, reference(c, "dw"), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Torch, ConvReference,
                         ::testing::Values("conv_basic", "conv_stride2_pad", "conv_dilation",
                                           "conv_groups2", "conv_depthwise", "conv_1x1",
                                           "conv_rect", "conv_wide", "conv_wide_depthwise"));

struct ConvCase {
  Shape x;
  int out, kh, kw;
  ops::Conv2dParams p;
  bool bias;
};

ops::Conv2dParams conv_params(int stride, int pad, int dilation, int groups) {
  ops::Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

// Checks dL/dx, dL/dw and (with a bias) dL/db against central differences.
void check_gradients(const ConvCase& k, std::uint32_t seed) {
  SCOPED_TRACE("x " + k.x.str() + " out " + std::to_string(k.out) + " kernel " +
               std::to_string(k.kh) + "x" + std::to_string(k.kw) + " groups " +
               std::to_string(k.p.groups));
  const Shape w_shape{k.out, k.x[1] / k.p.groups, k.kh, k.kw};
  const Shape y_shape = ops::conv2d_output_shape(k.x, w_shape, k.p);
  std::vector<Tensor> inputs{random_tensor(k.x, seed), random_tensor(w_shape, seed + 1),
                             k.bias ? random_tensor(Shape{k.out}, seed + 2) : Tensor()};
  const auto forward = [&](std::vector<Tensor>& in) {
    Tensor y = Tensor::empty(y_shape);
    ops::conv2d_forward(in[0], in[1], in[2], y, k.p);
    return y;
  };
  const auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
    Tensor dx = Tensor::empty(k.x), dw = Tensor::empty(w_shape);
    Tensor db = k.bias ? Tensor::empty(Shape{k.out}) : Tensor();
    ops::conv2d_backward_data(dy, in[1], dx, k.p);
    ops::conv2d_backward_weights(in[0], dy, dw, db, k.p);
    return std::vector<Tensor>{dx, dw, db};
  };
  std::vector<int> checked{0, 1};
  if (k.bias) checked.push_back(2);
  testing::expect_gradients_match(inputs, forward, backward, checked);
}

TEST(Conv2d, GradientsMatchFiniteDifferences) {
  const ConvCase cases[] = {
      {{1, 1, 5, 5}, 1, 3, 3, conv_params(1, 0, 1, 1), true},
      {{2, 3, 7, 6}, 4, 3, 3, conv_params(1, 1, 1, 1), true},
      {{2, 3, 9, 8}, 5, 3, 3, conv_params(2, 1, 1, 1), true},    // stride 2, odd sizes
      {{1, 2, 9, 10}, 3, 3, 3, conv_params(1, 2, 2, 1), false},  // dilation
      {{2, 4, 7, 7}, 6, 3, 3, conv_params(2, 1, 1, 2), true},    // groups 2, stride 2
      {{3, 6, 6, 5}, 6, 3, 3, conv_params(1, 1, 1, 6), true},    // depthwise
      {{2, 3, 8, 7}, 4, 5, 2, conv_params(1, 0, 1, 1), true},    // rectangular kernel
      {{2, 8, 5, 5}, 16, 1, 1, conv_params(1, 0, 1, 1), false},  // 1x1
  };
  std::uint32_t seed = 10;
  for (const ConvCase& k : cases) check_gradients(k, seed += 3);
}

TEST(Conv2d, GradientsMatchOnRandomShapes) {
  std::mt19937 gen(7);
  const auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  for (int trial = 0; trial < 6; ++trial) {
    const int groups = pick(1, 3);
    const int k = pick(1, 3), dilation = pick(1, 2), pad = pick(0, 2), stride = pick(1, 2);
    const int extent = (k - 1) * dilation + 1;
    ConvCase c{{pick(1, 3), groups * pick(1, 2), pick(extent, 9), pick(extent, 9)},
               groups * pick(1, 3),
               k,
               k,
               conv_params(stride, pad, dilation, groups),
               pick(0, 1) == 1};
    check_gradients(c, 100 + static_cast<std::uint32_t>(trial) * 3);
  }
}

TEST(Conv2d, OutputShape) {
  ops::Conv2dParams p = conv_params(2, 1, 1, 1);
  EXPECT_EQ(ops::conv2d_output_shape({2, 3, 224, 224}, {64, 3, 7, 7}, conv_params(2, 3, 1, 1)),
            (Shape{2, 64, 112, 112}));
  EXPECT_EQ(ops::conv2d_output_shape({1, 4, 9, 8}, {6, 4, 3, 3}, p), (Shape{1, 6, 5, 4}));
  EXPECT_EQ(ops::conv2d_output_shape({1, 2, 10, 10}, {2, 2, 3, 3}, conv_params(1, 0, 2, 1)),
            (Shape{1, 2, 6, 6}));
}

TEST(Conv2d, ShapeMismatchesNameTheOp) {
  const ops::Conv2dParams p = conv_params(1, 1, 1, 1);
  EXPECT_EQ(error_of([&] {
              ops::conv2d_output_shape({2, 3, 8, 8}, {8, 4, 3, 3}, p);
            }),
            "conv2d: input has 3 channels but weight [8, 4, 3, 3] with groups 1 expects 4");
  EXPECT_NE(error_of([&] {
              ops::conv2d_output_shape({2, 4, 8, 8}, {6, 2, 3, 3}, conv_params(1, 1, 1, 4));
            }).find("conv2d: weight [6, 2, 3, 3] has 6 output channels, not divisible by groups 4"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ops::conv2d_output_shape({1, 1, 2, 2}, {1, 1, 5, 5}, p);
            }).find("does not fit"),
            std::string::npos);

  const Tensor x = Tensor::zeros({2, 3, 8, 8}), w = Tensor::zeros({4, 3, 3, 3});
  Tensor y = Tensor::zeros({2, 4, 7, 8});  // should be [2, 4, 8, 8]
  const std::string bad_y = error_of([&] { ops::conv2d_forward(x, w, Tensor(), y, p); });
  EXPECT_EQ(bad_y.rfind("conv2d_forward: y has shape [2, 4, 7, 8]", 0), 0u) << bad_y;
  Tensor y_ok = Tensor::zeros({2, 4, 8, 8});
  const std::string bad_b =
      error_of([&] { ops::conv2d_forward(x, w, Tensor::zeros({3}), y_ok, p); });
  EXPECT_EQ(bad_b.rfind("conv2d_forward: b must be [4]", 0), 0u) << bad_b;
  const std::string bad_x = error_of([&] {
    ops::conv2d_forward(Tensor::zeros({2, 5, 8, 8}), w, Tensor(), y_ok, p);
  });
  EXPECT_EQ(bad_x.rfind("conv2d_forward: conv2d: input has 5 channels", 0), 0u) << bad_x;
  Tensor dx = Tensor::zeros({2, 3, 9, 8});
  const std::string bad_dx = error_of([&] { ops::conv2d_backward_data(y_ok, w, dx, p); });
  EXPECT_EQ(bad_dx.rfind("conv2d_backward_data: dy has shape [2, 4, 8, 8]", 0), 0u) << bad_dx;
  Tensor dw = Tensor::zeros({4, 3, 3, 2});
  Tensor db;
  const std::string bad_dw = error_of([&] { ops::conv2d_backward_weights(x, y_ok, dw, db, p); });
  EXPECT_EQ(bad_dw.rfind("conv2d_backward_weights: dy has shape", 0), 0u) << bad_dw;
  const std::string bad_dtype = error_of([&] {
    ops::conv2d_forward(Tensor::zeros({2, 3, 8, 8}, DType::i32), w, Tensor(), y_ok, p);
  });
  EXPECT_EQ(bad_dtype.rfind("conv2d_forward: x must be f32", 0), 0u) << bad_dtype;
}

// The GPU's algorithm choice (ops/cuda/conv_choice.h), on cuDNN's ranking: the top one by
// default, the first deterministic one with --deterministic, none when no candidate qualifies.
struct RankedAlgorithm {
  int algo = 0;
  bool deterministic = false;
};

TEST(ConvAlgorithmChoice, TopRankedUnlessDeterministicIsAsked) {
  using ops::gpu::pick_convolution_algorithm;
  const std::vector<RankedAlgorithm> ranked{{7, false}, {1, true}, {0, true}};
  EXPECT_EQ(pick_convolution_algorithm(ranked, false)->algo, 7);
  EXPECT_EQ(pick_convolution_algorithm(ranked, true)->algo, 1);
  const std::vector<RankedAlgorithm> none_deterministic{{7, false}, {6, false}};
  EXPECT_EQ(pick_convolution_algorithm(none_deterministic, false)->algo, 7);
  EXPECT_EQ(pick_convolution_algorithm(none_deterministic, true), nullptr);
  EXPECT_EQ(pick_convolution_algorithm(std::vector<RankedAlgorithm>{}, false), nullptr);
}

}  // namespace
}  // namespace ruche
