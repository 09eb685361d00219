// Nets of the shapes in Caffe's model zoo, written in ruche's schema (issue 19): BatchNorm and
// Scale in place (as Caffe writes them) equal an affine batch norm; several losses train on their
// weighted sum (loss_weight) with the heaviest one the main head; a deploy net (no loss) builds;
// inception with LRN and Concat, fire modules, depthwise convolution with BN + Scale and
// bottleneck residual blocks build, run forward and backward, and give finite gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "engine/graph/net.h"
#include "ops/ops.h"
#include "engine/rng/fill.h"
#include "engine/train/evaluate.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

std::unique_ptr<Net> build(const std::string& text, Shape sample, int batch = 4, int classes = 5) {
  NetSource source;
  const auto param = parse_net(text, "zoo.prototxt", &source);
  NetOptions options;
  options.batch_size = batch;
  options.sample_shape = sample;
  options.num_classes = classes;
  options.source = source;
  auto net = Net::build(param, options);
  net->init_params(11);
  fill_uniform(net->input(), -1, 1, RngStream{5, RngPurpose::test, 0, 0, 0});
  if (net->labels().defined()) {
    std::int32_t* labels = net->labels().data<std::int32_t>();
    for (int i = 0; i < batch; ++i) labels[i] = (i * 3) % classes;
  }
  return net;
}

void step(Net& net) {
  StepContext ctx;
  net.forward(ctx);
  net.backward(ctx, false);
}

double norm(const Tensor& t) {
  double s = 0;
  for (float v : t.to_vector()) s += static_cast<double>(v) * v;
  return std::sqrt(s);
}

constexpr const char* kBnScaleInPlace = R"(
layer { name: "in" type: "Input" top: "data" top: "label" }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { affine: false } }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)";

constexpr const char* kAffineBn = R"(
layer { name: "in" type: "Input" top: "data" top: "label" }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "bn" }
layer { name: "relu" type: "ReLU" bottom: "bn" top: "bn" }
layer { name: "pool" type: "Pooling" bottom: "bn" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)";

TEST(CaffeNets, BatchNormAndScaleInPlaceEqualAnAffineBatchNorm) {
  auto a = build(kBnScaleInPlace, {3, 6, 6});
  auto b = build(kAffineBn, {3, 6, 6});
  for (const char* name : {"conv.weight", "fc.weight", "fc.bias"}) {
    b->state_tensor(name).copy_from(a->state_tensor(name));
  }
  Tensor gamma = a->state_tensor("scale.weight"), beta = a->state_tensor("scale.bias");
  fill_uniform(gamma, 0.5f, 1.5f, RngStream{1, RngPurpose::test, 0, 0, 1});
  fill_uniform(beta, -0.5f, 0.5f, RngStream{1, RngPurpose::test, 0, 0, 2});
  b->state_tensor("bn.weight").copy_from(a->state_tensor("scale.weight"));
  b->state_tensor("bn.bias").copy_from(a->state_tensor("scale.bias"));
  b->input().copy_from(a->input());
  b->labels().copy_from(a->labels());
  step(*a);
  step(*b);
  EXPECT_NEAR(a->loss().item(), b->loss().item(), 1e-6);
  auto grad = [](Net& net, const std::string& name) {
    for (const auto& e : net.param_table()) {
      if (e.name == name) return net.grads().narrow(0, e.offset, e.count).clone();
    }
    return Tensor();
  };
  EXPECT_TENSORS_CLOSE(grad(*a, "conv.weight"), grad(*b, "conv.weight"), 1e-6);
  EXPECT_TENSORS_CLOSE(grad(*a, "scale.weight"), grad(*b, "bn.weight"), 1e-6);
  EXPECT_TENSORS_CLOSE(grad(*a, "scale.bias"), grad(*b, "bn.bias"), 1e-6);
  EXPECT_TENSORS_CLOSE(a->state_tensor("bn.running_var"), b->state_tensor("bn.running_var"), 1e-6);
}

// GoogLeNet's training net in miniature: an auxiliary head (weight 0.3) before the main one.
std::string two_heads(const std::string& aux_weight, const std::string& main_weight) {
  return R"(
layer { name: "in" type: "Input" top: "data" top: "label" }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "aux_fc" type: "InnerProduct" bottom: "conv" top: "aux_fc" inner_product_param { num_output: 5 } }
layer { name: "aux_loss" type: "SoftmaxWithLoss" bottom: "aux_fc" bottom: "label" top: "aux_loss" )" +
         aux_weight + R"( }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" )" +
         main_weight + R"( }
)";
}

TEST(CaffeNets, SeveralLossesTrainOnTheirWeightedSum) {
  auto net = build(two_heads("loss_weight: 0.3", ""), {2, 5, 5});
  ASSERT_EQ(net->losses().size(), 2u);
  EXPECT_EQ(net->losses()[0].name, "aux_loss");
  EXPECT_FLOAT_EQ(net->losses()[0].weight, 0.3f);
  EXPECT_FLOAT_EQ(net->losses()[1].weight, 1.0f);
  EXPECT_EQ(net->main_loss_layer(), 6);  // "loss", not the first one found
  step(*net);
  const float aux = net->losses()[0].value.item(), main = net->losses()[1].value.item();
  EXPECT_NEAR(net->loss().item(), 0.3 * aux + main, 1e-6);
  EXPECT_TRUE(net->output().shares_storage(net->blob("fc")));
  // The probabilities (accuracy, eval, export) are the main head's.
  const auto* main_layer = net->layers()[6].get();
  EXPECT_EQ(main_layer->name(), "loss");
  Tensor probs = net_probabilities(*net).clone();
  Tensor expected = Tensor::empty(probs.shape());
  ops::softmax_forward(net->blob("fc"), expected);
  EXPECT_TENSORS_CLOSE(probs, expected, 1e-6);

  // Doubling both weights doubles every gradient; dropping the auxiliary head's weight to 0 leaves
  // aux_fc without a gradient.
  auto twice = build(two_heads("loss_weight: 0.6", "loss_weight: 2"), {2, 5, 5});
  step(*twice);
  EXPECT_NEAR(twice->loss().item(), 2 * net->loss().item(), 1e-5);
  Tensor g2 = twice->grads().clone();
  ops::scale(0.5f, g2);
  EXPECT_TENSORS_CLOSE(g2, net->grads(), 1e-6);
  auto main_only = build(two_heads("loss_weight: 0", ""), {2, 5, 5});
  step(*main_only);
  EXPECT_NEAR(main_only->loss().item(), main, 1e-6);
  for (const auto& e : main_only->param_table()) {
    if (e.name.rfind("aux_fc.", 0) == 0) {
      EXPECT_EQ(norm(main_only->grads().narrow(0, e.offset, e.count)), 0.0) << e.name;
    }
  }
  // The heaviest head leads wherever it sits.
  auto first_heavy = build(two_heads("loss_weight: 2", "loss_weight: 0.5"), {2, 5, 5});
  EXPECT_EQ(first_heavy->main_loss_layer(), 4);
  EXPECT_TRUE(first_heavy->output().shares_storage(first_heavy->blob("aux_fc")));
}

TEST(CaffeNets, LossWeightIsChecked) {
  testing::expect_error(
      [] {
        build(two_heads("loss_weight: -1", ""), {2, 5, 5});
      },
      {"zoo.prototxt:7: layer 'aux_loss'", "loss_weight must be finite and >= 0"});
}

TEST(CaffeNets, DeployNetBuildsWithoutALoss) {
  auto net = build(R"(
layer { name: "in" type: "Input" top: "data" }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
)",
                   {1, 5, 5});
  EXPECT_FALSE(net->has_loss());
  EXPECT_FALSE(net->loss().defined());
  EXPECT_EQ(net->main_loss_layer(), -1);
  StepContext ctx;
  ctx.phase = Phase::test;
  net->forward(ctx);
  EXPECT_TRUE(net->output().shares_storage(net->blob("prob")));
  const auto p = net->output().to_vector();
  double sum = 0;
  for (int c = 0; c < 5; ++c) sum += p[static_cast<std::size_t>(c)];
  EXPECT_NEAR(sum, 1.0, 1e-5);
}

// Inception (GoogLeNet) with LRN and Concat.
constexpr const char* kInception = R"(
layer { name: "in" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "b1" type: "Convolution" bottom: "norm1" top: "b1" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "b2r" type: "Convolution" bottom: "norm1" top: "b2r" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "b2" type: "Convolution" bottom: "b2r" top: "b2" convolution_param { num_output: 5 kernel_size: 3 pad: 1 } }
layer { name: "b3p" type: "Pooling" bottom: "norm1" top: "b3p" pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "b3" type: "Convolution" bottom: "b3p" top: "b3" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "cat" type: "Concat" bottom: "b1" bottom: "b2" bottom: "b3" top: "cat" }
layer { name: "norm2" type: "LRN" bottom: "cat" top: "norm2" lrn_param { local_size: 3 alpha: 0.001 norm_region: WITHIN_CHANNEL } }
layer { name: "pool" type: "Pooling" bottom: "norm2" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)";

// SqueezeNet's fire module.
constexpr const char* kFire = R"(
layer { name: "in" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "squeeze" type: "Convolution" bottom: "conv1" top: "squeeze" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "squeeze_relu" type: "ReLU" bottom: "squeeze" top: "squeeze" }
layer { name: "expand1x1" type: "Convolution" bottom: "squeeze" top: "expand1x1" convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "expand1x1_relu" type: "ReLU" bottom: "expand1x1" top: "expand1x1" }
layer { name: "expand3x3" type: "Convolution" bottom: "squeeze" top: "expand3x3" convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "expand3x3_relu" type: "ReLU" bottom: "expand3x3" top: "expand3x3" }
layer { name: "concat" type: "Concat" bottom: "expand1x1" bottom: "expand3x3" top: "concat" }
layer { name: "drop" type: "Dropout" bottom: "concat" top: "concat" dropout_param { dropout_ratio: 0.5 } }
layer { name: "conv10" type: "Convolution" bottom: "concat" top: "conv10" convolution_param { num_output: 5 kernel_size: 1 } }
layer { name: "pool10" type: "Pooling" bottom: "conv10" top: "pool10" pooling_param { pool: AVE global_pooling: true } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "pool10" bottom: "label" top: "loss" }
)";

// MobileNet: depthwise (group = channels) and pointwise convolutions, each with BN + Scale in
// place.
constexpr const char* kMobile = R"(
layer { name: "in" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "conv1/bn" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { affine: false } }
layer { name: "conv1/scale" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2/dw" type: "Convolution" bottom: "conv1" top: "conv2/dw" convolution_param { num_output: 8 group: 8 kernel_size: 3 pad: 1 stride: 2 bias_term: false } }
layer { name: "conv2/dw/bn" type: "BatchNorm" bottom: "conv2/dw" top: "conv2/dw" batch_norm_param { affine: false } }
layer { name: "conv2/dw/scale" type: "Scale" bottom: "conv2/dw" top: "conv2/dw" scale_param { bias_term: true } }
layer { name: "relu2/dw" type: "ReLU" bottom: "conv2/dw" top: "conv2/dw" }
layer { name: "conv2/sep" type: "Convolution" bottom: "conv2/dw" top: "conv2/sep" convolution_param { num_output: 12 kernel_size: 1 bias_term: false } }
layer { name: "conv2/sep/bn" type: "BatchNorm" bottom: "conv2/sep" top: "conv2/sep" batch_norm_param { affine: false } }
layer { name: "conv2/sep/scale" type: "Scale" bottom: "conv2/sep" top: "conv2/sep" scale_param { bias_term: true } }
layer { name: "relu2/sep" type: "ReLU" bottom: "conv2/sep" top: "conv2/sep" }
layer { name: "pool" type: "Pooling" bottom: "conv2/sep" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)";

// ResNet-50's bottleneck block: 1x1, 3x3, 1x1 with BN + Scale in place, a projection shortcut,
// Eltwise and ReLU in place; a Power layer scales the join (as some Caffe nets do).
constexpr const char* kBottleneck = R"(
layer { name: "in" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn_conv1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { affine: false } }
layer { name: "scale_conv1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "conv1_relu" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "res2a_branch1" type: "Convolution" bottom: "conv1" top: "res2a_branch1" convolution_param { num_output: 16 kernel_size: 1 bias_term: false } }
layer { name: "bn2a_branch1" type: "BatchNorm" bottom: "res2a_branch1" top: "res2a_branch1" batch_norm_param { affine: false } }
layer { name: "scale2a_branch1" type: "Scale" bottom: "res2a_branch1" top: "res2a_branch1" scale_param { bias_term: true } }
layer { name: "res2a_branch2a" type: "Convolution" bottom: "conv1" top: "res2a_branch2a" convolution_param { num_output: 4 kernel_size: 1 bias_term: false } }
layer { name: "bn2a_branch2a" type: "BatchNorm" bottom: "res2a_branch2a" top: "res2a_branch2a" batch_norm_param { affine: false } }
layer { name: "scale2a_branch2a" type: "Scale" bottom: "res2a_branch2a" top: "res2a_branch2a" scale_param { bias_term: true } }
layer { name: "res2a_branch2a_relu" type: "ReLU" bottom: "res2a_branch2a" top: "res2a_branch2a" }
layer { name: "res2a_branch2b" type: "Convolution" bottom: "res2a_branch2a" top: "res2a_branch2b" convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn2a_branch2b" type: "BatchNorm" bottom: "res2a_branch2b" top: "res2a_branch2b" batch_norm_param { affine: false } }
layer { name: "scale2a_branch2b" type: "Scale" bottom: "res2a_branch2b" top: "res2a_branch2b" scale_param { bias_term: true } }
layer { name: "res2a_branch2b_relu" type: "ReLU" bottom: "res2a_branch2b" top: "res2a_branch2b" }
layer { name: "res2a_branch2c" type: "Convolution" bottom: "res2a_branch2b" top: "res2a_branch2c" convolution_param { num_output: 16 kernel_size: 1 bias_term: false } }
layer { name: "bn2a_branch2c" type: "BatchNorm" bottom: "res2a_branch2c" top: "res2a_branch2c" batch_norm_param { affine: false } }
layer { name: "scale2a_branch2c" type: "Scale" bottom: "res2a_branch2c" top: "res2a_branch2c" scale_param { bias_term: true } }
layer { name: "res2a" type: "Eltwise" bottom: "res2a_branch1" bottom: "res2a_branch2c" top: "res2a" }
layer { name: "res2a_relu" type: "ReLU" bottom: "res2a" top: "res2a" }
layer { name: "half" type: "Power" bottom: "res2a" top: "half" power_param { scale: 0.5 } }
layer { name: "pool5" type: "Pooling" bottom: "half" top: "pool5" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool5" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)";

TEST(CaffeNets, ZooShapesBuildAndTrain) {
  for (auto [name, text] :
       {std::pair{"inception", kInception}, std::pair{"fire", kFire},
        std::pair{"mobilenet", kMobile}, std::pair{"bottleneck", kBottleneck}}) {
    SCOPED_TRACE(name);
    auto net = build(text, {3, 9, 9});
    float first = 0;
    for (int s = 0; s < 8; ++s) {  // plain SGD on one batch: the loss must fall
      step(*net);
      if (s == 0) first = net->loss().item();
      EXPECT_EQ(net->first_nonfinite(), "");
      ops::axpy(-0.2f, net->grads(), net->params());
    }
    EXPECT_GT(norm(net->grads()), 0.0);
    EXPECT_LT(net->loss().item(), first) << name;
  }
}

}  // namespace
}  // namespace ruche
