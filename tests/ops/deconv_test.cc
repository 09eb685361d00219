// deconv2d (transposed convolution): PyTorch references (stride, padding, output padding,
// dilation, groups, depthwise, bias or none), finite-difference gradients of x, w and b, the
// output shape rule and its errors.
#include <gtest/gtest.h>

#include <random>
#include <string>

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

// A tensor of `value`: outputs start as garbage, so an op that adds instead of writing shows.
Tensor filled(const Shape& shape, float value) {
  Tensor t = Tensor::empty(shape);
  t.fill(value);
  return t;
}

ops::Deconv2dParams params_of(const Tensor& t) {
  const auto v = t.to_vector<std::int32_t>();
  ops::Deconv2dParams p;
  p.stride_h = v[0], p.stride_w = v[1], p.pad_h = v[2], p.pad_w = v[3];
  p.dilation_h = v[4], p.dilation_w = v[5], p.groups = v[6];
  p.output_padding_h = v[8], p.output_padding_w = v[9];
  return p;
}

class DeconvReference : public ::testing::TestWithParam<std::string> {};

TEST_P(DeconvReference, MatchesTorch) {
  const std::string c = GetParam();
  const Tensor params = reference(c, "params");
  const ops::Deconv2dParams p = params_of(params);
  const bool bias = params.to_vector<std::int32_t>()[7] != 0;
  const Tensor x = reference(c, "x"), w = reference(c, "w"), dy = reference(c, "dy");
  const Tensor b = bias ? reference(c, "b") : Tensor();
  const Tensor y_ref = reference(c, "y");
  ASSERT_EQ(ops::deconv2d_output_shape(x.shape(), w.shape(), p), y_ref.shape());

  Tensor y = filled(y_ref.shape(), 123.0f);  // overwritten, never added to
  ops::deconv2d_forward(x, w, b, y, p);
  EXPECT_TENSORS_CLOSE(y, y_ref, 1e-5);
  Tensor dx = filled(x.shape(), 123.0f);
  ops::deconv2d_backward_data(dy, w, dx, p);
  EXPECT_TENSORS_CLOSE(dx, reference(c, "dx"), 1e-5);
  Tensor dw = filled(w.shape(), 123.0f);
  Tensor db = bias ? filled(b.shape(), 123.0f) : Tensor();
  ops::deconv2d_backward_weights(x, dy, dw, db, p);
  EXPECT_TENSORS_CLOSE(dw, reference(c, "dw"), 1e-5);
  if (bias) {
    EXPECT_TENSORS_CLOSE(db, reference(c, "db"), 1e-5);
  }

  // A second call hits the cache with other buffers.
  Tensor y2 = Tensor::zeros(y_ref.shape());
  ops::deconv2d_forward(x.clone(), w.clone(), bias ? b.clone() : Tensor(), y2, p);
  EXPECT_TENSORS_CLOSE(y2, y_ref, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Torch, DeconvReference,
                         ::testing::Values("deconv_basic", "deconv_stride2",
                                           "deconv_stride2_outpad", "deconv_outpad_no_pad",
                                           "deconv_dilation", "deconv_groups2", "deconv_depthwise",
                                           "deconv_rect", "deconv_outpad_dilation", "deconv_1x1",
                                           "deconv_wide"));

struct DeconvCase {
  Shape x;
  int out, kh, kw;
  ops::Deconv2dParams p;
  bool bias;
};

ops::Deconv2dParams deconv_params(int stride, int pad, int dilation, int groups,
                                  int output_padding = 0) {
  ops::Deconv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  p.output_padding_h = p.output_padding_w = output_padding;
  return p;
}

void check_gradients(const DeconvCase& k, std::uint32_t seed) {
  SCOPED_TRACE("x " + k.x.str() + " out " + std::to_string(k.out) + " kernel " +
               std::to_string(k.kh) + "x" + std::to_string(k.kw) + " stride " +
               std::to_string(k.p.stride_h) + " groups " + std::to_string(k.p.groups) +
               " output padding " + std::to_string(k.p.output_padding_h));
  const Shape w_shape{k.x[1], k.out / k.p.groups, k.kh, k.kw};
  const Shape y_shape = ops::deconv2d_output_shape(k.x, w_shape, k.p);
  std::vector<Tensor> inputs{random_tensor(k.x, seed), random_tensor(w_shape, seed + 1),
                             k.bias ? random_tensor(Shape{k.out}, seed + 2) : Tensor()};
  const auto forward = [&](std::vector<Tensor>& in) {
    Tensor y = Tensor::empty(y_shape);
    ops::deconv2d_forward(in[0], in[1], in[2], y, k.p);
    return y;
  };
  const auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
    Tensor dx = Tensor::empty(k.x), dw = Tensor::empty(w_shape);
    Tensor db = k.bias ? Tensor::empty(Shape{k.out}) : Tensor();
    ops::deconv2d_backward_data(dy, in[1], dx, k.p);
    ops::deconv2d_backward_weights(in[0], dy, dw, db, k.p);
    return std::vector<Tensor>{dx, dw, db};
  };
  std::vector<int> checked{0, 1};
  if (k.bias) checked.push_back(2);
  testing::expect_gradients_match(inputs, forward, backward, checked);
}

TEST(Deconv2d, GradientsMatchFiniteDifferences) {
  const DeconvCase cases[] = {
      {{1, 1, 4, 4}, 1, 3, 3, deconv_params(1, 0, 1, 1), true},
      {{2, 3, 4, 5}, 4, 4, 4, deconv_params(2, 1, 1, 1), true},     // the usual x2 upsampler
      {{2, 3, 5, 4}, 2, 3, 3, deconv_params(2, 1, 1, 1, 1), true},  // output padding
      {{1, 2, 5, 6}, 3, 3, 3, deconv_params(1, 2, 2, 1), false},    // dilation
      {{2, 4, 4, 4}, 6, 3, 3, deconv_params(2, 1, 1, 2, 1), true},  // groups 2
      {{2, 5, 3, 4}, 5, 2, 2, deconv_params(2, 0, 1, 5), true},     // depthwise
      {{2, 3, 4, 3}, 4, 5, 2, deconv_params(3, 1, 1, 1, 2), true},  // rectangular, stride 3
  };
  std::uint32_t seed = 10;
  for (const DeconvCase& k : cases) check_gradients(k, seed += 3);
}

TEST(Deconv2d, GradientsMatchOnRandomShapes) {
  std::mt19937 gen(11);
  const auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  for (int trial = 0; trial < 6; ++trial) {
    const int groups = pick(1, 3);
    const int k = pick(1, 3), dilation = pick(1, 2), stride = pick(1, 3);
    const int pad = pick(0, (k - 1) * dilation / 2);
    const int output_padding = pick(0, std::max(stride, dilation) - 1);
    DeconvCase c{
        {pick(1, 3), groups * pick(1, 2), pick(1, 6), pick(1, 6)},    groups * pick(1, 3), k, k,
        deconv_params(stride, pad, dilation, groups, output_padding), pick(0, 1) == 1};
    check_gradients(c, 200 + static_cast<std::uint32_t>(trial) * 3);
  }
}

TEST(Deconv2d, OutputShape) {
  // (in - 1) * stride - 2 * pad + dilation * (k - 1) + output_padding + 1
  EXPECT_EQ(ops::deconv2d_output_shape({2, 8, 7, 7}, {8, 4, 4, 4}, deconv_params(2, 1, 1, 1)),
            (Shape{2, 4, 14, 14}));
  EXPECT_EQ(ops::deconv2d_output_shape({1, 4, 5, 4}, {4, 3, 3, 3}, deconv_params(2, 1, 1, 2, 1)),
            (Shape{1, 6, 10, 8}));
  EXPECT_EQ(ops::deconv2d_output_shape({1, 2, 3, 3}, {2, 2, 3, 3}, deconv_params(1, 0, 2, 1)),
            (Shape{1, 2, 7, 7}));
}

TEST(Deconv2d, ShapeMismatchesNameTheOp) {
  EXPECT_EQ(error_of([] {
              ops::deconv2d_output_shape({1, 2, 4, 4}, {2, 2, 3, 3}, deconv_params(2, 1, 1, 1, 2));
            }),
            "deconv2d: output padding 2x2 must be smaller than the stride 2x2 or the dilation 1x1");
  EXPECT_EQ(error_of([] {
              ops::deconv2d_output_shape({1, 3, 4, 4}, {2, 2, 3, 3}, deconv_params(1, 1, 1, 1));
            }),
            "deconv2d: input has 3 channels but weight [2, 2, 3, 3] with groups 1 expects 2 (a "
            "multiple of groups)");
  EXPECT_NE(error_of([] {
              ops::deconv2d_output_shape({1, 1, 1, 1}, {1, 1, 1, 1}, deconv_params(1, 1, 1, 1));
            }).find("leaves no output"),
            std::string::npos);

  const ops::Deconv2dParams p = deconv_params(2, 1, 1, 1);
  const Tensor x = Tensor::zeros({2, 3, 4, 4}), w = Tensor::zeros({3, 5, 4, 4});
  Tensor y = Tensor::zeros({2, 5, 8, 7});  // should be [2, 5, 8, 8]
  const std::string bad_y = error_of([&] { ops::deconv2d_forward(x, w, Tensor(), y, p); });
  EXPECT_EQ(bad_y.rfind("deconv2d_forward: y has shape [2, 5, 8, 7]", 0), 0u) << bad_y;
  Tensor y_ok = Tensor::zeros({2, 5, 8, 8});
  const std::string bad_b =
      error_of([&] { ops::deconv2d_forward(x, w, Tensor::zeros({3}), y_ok, p); });
  EXPECT_EQ(bad_b.rfind("deconv2d_forward: b must be [5]", 0), 0u) << bad_b;
  Tensor dx = Tensor::zeros({2, 3, 5, 4});
  const std::string bad_dx = error_of([&] { ops::deconv2d_backward_data(y_ok, w, dx, p); });
  EXPECT_EQ(bad_dx.rfind("deconv2d_backward_data: dy has shape [2, 5, 8, 8]", 0), 0u) << bad_dx;
  Tensor dw = Tensor::zeros({3, 5, 4, 3});
  Tensor db;
  const std::string bad_dw = error_of([&] { ops::deconv2d_backward_weights(x, y_ok, dw, db, p); });
  EXPECT_EQ(bad_dw.rfind("deconv2d_backward_weights: dy has shape", 0), 0u) << bad_dw;
  const std::string bad_dtype = error_of([&] {
    ops::deconv2d_forward(Tensor::zeros({2, 3, 4, 4}, DType::i32), w, Tensor(), y_ok, p);
  });
  EXPECT_EQ(bad_dtype.rfind("deconv2d_forward: x must be f32", 0), 0u) << bad_dtype;
}

}  // namespace
}  // namespace ruche
