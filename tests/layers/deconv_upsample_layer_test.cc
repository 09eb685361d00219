// Deconvolution and Upsample layers: shapes, parameters (PyTorch's names, layout and default
// initialisation), FLOPs, errors naming the layer, forward against the ops, gradients; both in a
// Net (its summary and memory plan).
#include <gtest/gtest.h>

#include <cmath>

#include "engine/graph/net.h"
#include "engine/proto/text_format.h"
#include "engine/rng/fill.h"
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

const char* kDeconv =
    "name: 'up1' type: 'Deconvolution' convolution_param { num_output: 4 kernel_size: 3 "
    "stride: 2 pad: 1 output_padding: 1 group: 2 }";

TEST(DeconvolutionLayer, ShapesParamsAndFlops) {
  auto layer = create_layer(layer_param(kDeconv));
  const auto tops = layer->reshape({Shape{2, 6, 5, 4}}, 0);
  ASSERT_EQ(tops.size(), 1u);
  // (in - 1) * 2 - 2 + 3 + 1
  EXPECT_EQ(tops[0], (Shape{2, 4, 10, 8}));
  const auto decls = layer->param_decls();
  ASSERT_EQ(decls.size(), 2u);
  EXPECT_EQ(decls[0].suffix, "weight");
  EXPECT_EQ(decls[0].shape, (Shape{6, 2, 3, 3}));  // [in, out / groups, kh, kw]
  EXPECT_EQ(decls[0].role, ParamRole::weight);
  // torch.nn.ConvTranspose2d's kaiming_uniform(a = sqrt(5)): fan_in = weight.size(1) * kh * kw.
  EXPECT_EQ(decls[0].fan_in, 2 * 9);
  EXPECT_EQ(decls[0].filler.type(), "uniform");
  EXPECT_FLOAT_EQ(decls[0].filler.max(), 1.0f / std::sqrt(18.0f));
  EXPECT_FLOAT_EQ(decls[0].filler.min(), -1.0f / std::sqrt(18.0f));
  EXPECT_EQ(decls[1].suffix, "bias");
  EXPECT_EQ(decls[1].shape, (Shape{4}));
  EXPECT_FLOAT_EQ(decls[1].filler.max(), 1.0f / std::sqrt(18.0f));
  EXPECT_DOUBLE_EQ(layer->forward_flops(), 2.0 * 6 * 5 * 4 * 2 * 3 * 3);
}

TEST(DeconvolutionLayer, RectangularNoBiasDilation) {
  auto layer = create_layer(layer_param(
      "name: 'd' type: 'Deconvolution' convolution_param { num_output: 3 kernel_h: 2 kernel_w: 3 "
      "stride_h: 2 stride_w: 1 pad_w: 1 dilation: 2 output_padding_h: 1 bias_term: false }"));
  // h: (5 - 1) * 2 + 2 * 1 + 1 + 1 = 12; w: (6 - 1) - 2 + 2 * 2 + 1 = 8
  EXPECT_EQ(layer->reshape({Shape{1, 2, 5, 6}}, 0)[0], (Shape{1, 3, 12, 8}));
  const auto decls = layer->param_decls();
  ASSERT_EQ(decls.size(), 1u);
  EXPECT_EQ(decls[0].shape, (Shape{2, 3, 2, 3}));
}

TEST(DeconvolutionLayer, Errors) {
  EXPECT_EQ(error_of([] {
              create_layer(
                  layer_param("name: 'up' type: 'Deconvolution' convolution_param { num_output: 2 "
                              "kernel_size: 3 stride: 2 output_padding: 2 }"));
            }),
            "Deconvolution 'up': output_padding 2x2 must be smaller than the stride 2x2 or the "
            "dilation 1");
  EXPECT_EQ(error_of([] {
              create_layer(layer_param(kDeconv))->reshape({Shape{64, 784}}, 0);
            }),
            "Deconvolution 'up1': expected a 4-d input [N, C, H, W], got [64, 784]");
  EXPECT_NE(error_of([] {
              create_layer(layer_param(
                  "name: 'c' type: 'Deconvolution' convolution_param { kernel_size: 3 }"));
            }).find("num_output is required"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              create_layer(layer_param(kDeconv))->reshape({Shape{1, 5, 7, 7}}, 0);
            }).find("Deconvolution 'up1': input channels 5 are not divisible by group 2"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              create_layer(
                  layer_param("name: 'c' type: 'Deconvolution' convolution_param { "
                              "num_output: 3 kernel_size: 4 stride: 2 group: 2 }"));
            }).find("num_output 3 is not divisible by group 2"),
            std::string::npos);
  const std::string small = error_of([] {
    create_layer(layer_param("name: 'c' type: 'Deconvolution' convolution_param { num_output: 3 "
                             "kernel_size: 1 pad: 2 }"))
        ->reshape({Shape{1, 1, 3, 3}}, 0);
  });
  EXPECT_EQ(small.rfind("Deconvolution 'c': deconv2d: padding 2x2 leaves no output", 0), 0u)
      << small;
}

TEST(DeconvolutionLayer, ForwardIsDeconv2d) {
  auto b = bind_layer(kDeconv, {random_tensor(Shape{2, 6, 5, 4}, 1)});
  b.forward();
  Tensor y = Tensor::empty(b.io.top[0].shape());
  ops::Deconv2dParams p;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  p.output_padding_h = p.output_padding_w = 1;
  p.groups = 2;
  ops::deconv2d_forward(b.io.bottom[0], b.io.params[0], b.io.params[1], y, p);
  EXPECT_TENSORS_CLOSE(b.io.top[0], y, 0.0);
}

TEST(DeconvolutionLayer, Gradients) {
  auto b = bind_layer(kDeconv, {random_tensor(Shape{2, 4, 3, 4}, 2)});
  testing::expect_layer_gradients(b, {0});
}

TEST(DeconvolutionLayer, FrozenWeightBesideTrainedBias) {
  auto b = bind_layer(kDeconv, {random_tensor(Shape{2, 4, 3, 3}, 3)});
  b.io.top_diff[0] = random_tensor(b.io.top[0].shape(), 4);
  b.forward();
  b.backward();
  const Tensor db_full = b.io.param_grads[1].clone();
  b.io.bottom_diff[0] = Tensor();
  b.io.param_grads[0] = Tensor();
  b.io.param_grads[1].zero();
  b.backward();
  EXPECT_TENSORS_CLOSE(b.io.param_grads[1], db_full, 0.0);
  b.io.param_grads[1] = Tensor();
  b.backward();
}

TEST(UpsampleLayer, ShapesByScaleAndSize) {
  auto nearest =
      create_layer(layer_param("name: 'u' type: 'Upsample' upsample_param { scale_factor: 2 }"));
  EXPECT_EQ(nearest->reshape({Shape{2, 3, 5, 7}}, 0)[0], (Shape{2, 3, 10, 14}));
  EXPECT_TRUE(nearest->param_decls().empty());
  EXPECT_DOUBLE_EQ(nearest->forward_flops(), 0.0);
  auto frac = create_layer(layer_param(
      "name: 'u' type: 'Upsample' upsample_param { scale_h: 1.5 scale_w: 2.5 mode: BILINEAR }"));
  EXPECT_EQ(frac->reshape({Shape{1, 2, 5, 5}}, 0)[0], (Shape{1, 2, 7, 12}));  // floor
  EXPECT_DOUBLE_EQ(frac->forward_flops(), 4.0 * 2 * 7 * 12);
  auto sized = create_layer(
      layer_param("name: 'u' type: 'Upsample' upsample_param { height: 9 width: 4 mode: BILINEAR "
                  "align_corners: true }"));
  EXPECT_EQ(sized->reshape({Shape{2, 1, 3, 3}}, 0)[0], (Shape{2, 1, 9, 4}));
}

TEST(UpsampleLayer, Errors) {
  const auto err = [](const std::string& param) {
    return error_of([&] {
      create_layer(layer_param("name: 'u' type: 'Upsample' upsample_param { " + param + " }"));
    });
  };
  EXPECT_EQ(err(""),
            "Upsample 'u': upsample_param needs either a scale (scale_factor, or scale_h and "
            "scale_w) or a size (height and width), got neither");
  EXPECT_NE(err("scale_factor: 2 height: 4 width: 4").find("not both"), std::string::npos);
  EXPECT_NE(err("scale_h: 2").find("scale_h and scale_w go together"), std::string::npos);
  EXPECT_NE(err("scale_factor: -1").find("scale factors must be positive"), std::string::npos);
  EXPECT_NE(err("height: 4").find("height and width must both be given"), std::string::npos);
  EXPECT_EQ(err("scale_factor: 2 align_corners: true"),
            "Upsample 'u': align_corners applies to mode BILINEAR only");
  EXPECT_EQ(
      error_of([] {
        create_layer(layer_param("name: 'u' type: 'Upsample' upsample_param { scale_factor: 0.1 }"))
            ->reshape({Shape{1, 1, 4, 4}}, 0);
      }),
      "Upsample 'u': input [1, 1, 4, 4] gives an empty output 0x0");
}

TEST(UpsampleLayer, ForwardIsUpsample2dAndGradients) {
  const char* text =
      "name: 'u' type: 'Upsample' upsample_param { scale_factor: 2 mode: BILINEAR "
      "align_corners: true }";
  auto b = bind_layer(text, {random_tensor(Shape{2, 3, 3, 4}, 5)});
  b.forward();
  Tensor y = Tensor::empty(b.io.top[0].shape());
  ops::UpsampleParams p;
  p.mode = ops::UpsampleMode::bilinear;
  p.align_corners = true;
  p.scale_h = p.scale_w = 2;
  ops::upsample2d_forward(b.io.bottom[0], y, p);
  EXPECT_TENSORS_CLOSE(b.io.top[0], y, 0.0);
  testing::expect_layer_gradients(b, {0});
  auto n = bind_layer("name: 'u' type: 'Upsample' upsample_param { height: 5 width: 7 }",
                      {random_tensor(Shape{1, 2, 3, 3}, 6)});
  testing::expect_layer_gradients(n, {0});
}

TEST(DeconvUpsampleNet, SummaryMemoryPlanAndStep) {
  NetSource source;
  const auto param = parse_net(R"(
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
        convolution_param { num_output: 3 kernel_size: 4 stride: 2 pad: 1 } }
layer { name: "resize" type: "Upsample" bottom: "up" top: "resize"
        upsample_param { scale_factor: 2 mode: BILINEAR } }
layer { name: "fc" type: "InnerProduct" bottom: "resize" top: "fc" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)",
                               "net.prototxt", &source);
  NetOptions options;
  options.batch_size = 2;
  options.sample_shape = {2, 4, 4};
  options.num_classes = 2;
  options.source = source;
  auto net = Net::build(param, options);
  net->init_params(3);
  const std::string s = net->summary();
  EXPECT_NE(s.find("Deconvolution"), std::string::npos) << s;
  EXPECT_NE(s.find("Upsample"), std::string::npos) << s;
  EXPECT_NE(s.find("[2, 3, 8, 8]"), std::string::npos) << s;
  EXPECT_NE(s.find("[2, 3, 16, 16]"), std::string::npos) << s;
  // The deconvolution's 2*2*4*4 inputs times 3*4*4 weights, the upsample's 4 per output.
  double flops = 0;
  for (const auto& layer : net->layers()) {
    if (layer->type() == "Deconvolution") {
      EXPECT_DOUBLE_EQ(layer->forward_flops(), 2.0 * 2 * 16 * 3 * 16);
    } else if (layer->type() == "Upsample") {
      EXPECT_DOUBLE_EQ(layer->forward_flops(), 4.0 * 2 * 3 * 16 * 16);
    }
    flops += layer->forward_flops();
  }
  EXPECT_DOUBLE_EQ(net->forward_flops(), flops);
  // Both tops are planned blobs (f32, with gradients): at least data and gradient of each.
  EXPECT_GE(net->activation_bytes(), 2u * 4u * (2 * 3 * 8 * 8 + 2 * 3 * 16 * 16));
  // Names as a PyTorch state_dict, ConvTranspose2d's layout.
  const Tensor w = net->state_tensor("up.weight");
  ASSERT_TRUE(w.defined());
  EXPECT_EQ(w.shape(), (Shape{2, 3, 4, 4}));
  ASSERT_TRUE(net->state_tensor("up.bias").defined());
  EXPECT_FALSE(net->state_tensor("resize.weight").defined());
  // One step runs and gives every trainable parameter a finite gradient.
  fill_uniform(net->input(), -1, 1, RngStream{3, RngPurpose::test, 0, 0, 0});
  net->labels().data<std::int32_t>()[0] = 0;
  net->labels().data<std::int32_t>()[1] = 1;
  StepContext ctx;
  net->forward(ctx);
  net->backward(ctx, false);
  EXPECT_TRUE(std::isfinite(net->loss().to_vector<float>()[0]));
  EXPECT_EQ(net->first_nonfinite(), "");
}

}  // namespace
}  // namespace ruche
