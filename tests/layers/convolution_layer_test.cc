// Convolution: shapes and parameters, errors, forward against conv2d, gradients, frozen paths.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/ops.h"
#include "tests/layers/layer_harness.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::bind_layer;
using testing::error_of;
using testing::layer_param;
using testing::random_tensor;

const char* kConv =
    "name: 'conv1' type: 'Convolution' "
    "convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2 }";

TEST(ConvolutionLayer, ShapesParamsAndFlops) {
  auto layer = create_layer(layer_param(kConv));
  const auto tops = layer->reshape({Shape{2, 6, 7, 7}}, 0);
  ASSERT_EQ(tops.size(), 1u);
  EXPECT_EQ(tops[0], (Shape{2, 4, 4, 4}));
  const auto decls = layer->param_decls();
  ASSERT_EQ(decls.size(), 2u);
  EXPECT_EQ(decls[0].suffix, "weight");
  EXPECT_EQ(decls[0].shape, (Shape{4, 3, 3, 3}));
  EXPECT_EQ(decls[0].role, ParamRole::weight);
  EXPECT_EQ(decls[0].fan_in, 3 * 9);
  EXPECT_EQ(decls[0].fan_out, 2 * 9);
  // torch.nn's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  EXPECT_EQ(decls[0].filler.type(), "uniform");
  EXPECT_FLOAT_EQ(decls[0].filler.max(), 1.0f / std::sqrt(27.0f));
  EXPECT_FLOAT_EQ(decls[0].filler.min(), -1.0f / std::sqrt(27.0f));
  EXPECT_EQ(decls[1].suffix, "bias");
  EXPECT_EQ(decls[1].shape, (Shape{4}));
  EXPECT_EQ(decls[1].role, ParamRole::bias);
  EXPECT_FLOAT_EQ(decls[1].filler.max(), 1.0f / std::sqrt(27.0f));
  EXPECT_DOUBLE_EQ(layer->forward_flops(), 2.0 * 4 * 4 * 4 * 3 * 3 * 3);
}

TEST(ConvolutionLayer, RectangularKernelNoBiasAndGivenFiller) {
  auto layer = create_layer(layer_param(
      "name: 'c' type: 'Convolution' convolution_param { num_output: 3 kernel_h: 1 kernel_w: 3 "
      "pad_w: 1 bias_term: false weight_filler { type: 'kaiming_normal' } }"));
  EXPECT_EQ(layer->reshape({Shape{1, 2, 5, 6}}, 0)[0], (Shape{1, 3, 5, 6}));
  const auto decls = layer->param_decls();
  ASSERT_EQ(decls.size(), 1u);
  EXPECT_EQ(decls[0].shape, (Shape{3, 2, 1, 3}));
  EXPECT_EQ(decls[0].filler.type(), "kaiming_normal");
  EXPECT_EQ(decls[0].fan_in, 6);
}

TEST(ConvolutionLayer, Errors) {
  EXPECT_EQ(error_of([] {
              create_layer(layer_param(kConv))->reshape({Shape{64, 784}}, 0);
            }),
            "Convolution: expected a 4-d input [N, C, H, W], got [64, 784]");
  EXPECT_NE(error_of([] {
              create_layer(layer_param(
                  "name: 'c' type: 'Convolution' convolution_param { kernel_size: 3 }"));
            }).find("num_output is required"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              create_layer(
                  layer_param("name: 'c' type: 'Convolution' convolution_param { num_output: 3 }"));
            }).find("kernel_size (or kernel_h and kernel_w) is required"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              create_layer(layer_param(kConv))->reshape({Shape{1, 5, 7, 7}}, 0);
            }).find("input channels 5 are not divisible by group 2"),
            std::string::npos);
  const std::string small = error_of([] {
    create_layer(
        layer_param(
            "name: 'c' type: 'Convolution' convolution_param { num_output: 3 kernel_size: 5 }"))
        ->reshape({Shape{1, 1, 3, 3}}, 0);
  });
  EXPECT_EQ(small.rfind("Convolution: ", 0), 0u) << small;
}

TEST(ConvolutionLayer, ForwardIsConv2d) {
  auto b = bind_layer(kConv, {random_tensor(Shape{2, 6, 7, 7}, 1)});
  b.forward();
  Tensor y = Tensor::empty(b.io.top[0].shape());
  ops::Conv2dParams p;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  p.groups = 2;
  ops::conv2d_forward(b.io.bottom[0], b.io.params[0], b.io.params[1], y, p);
  EXPECT_TENSORS_CLOSE(b.io.top[0], y, 0.0);
}

TEST(ConvolutionLayer, Gradients) {
  auto b = bind_layer(kConv, {random_tensor(Shape{2, 4, 5, 5}, 2)});
  testing::expect_layer_gradients(b, {0});
}

TEST(ConvolutionLayer, FrozenAndDataBranchesSkipTheirGradients) {
  auto b = bind_layer(kConv, {random_tensor(Shape{2, 4, 5, 5}, 3)});
  b.io.top_diff[0] = random_tensor(b.io.top[0].shape(), 4);
  b.forward();
  b.backward();
  const Tensor db_full = b.io.param_grads[1].clone();
  // No gradient for the data, a frozen weight beside a trained bias: the bias gradient is the same.
  b.io.bottom_diff[0] = Tensor();
  b.io.param_grads[0] = Tensor();
  b.io.param_grads[1].zero();
  b.backward();
  EXPECT_TENSORS_CLOSE(b.io.param_grads[1], db_full, 0.0);
  // Everything frozen: nothing to do, nothing touched.
  b.io.param_grads[1] = Tensor();
  b.backward();
}

}  // namespace
}  // namespace ruche
