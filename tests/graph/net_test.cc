#include "engine/graph/net.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/rng/fill.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;

// A small CNN with an in-place activation, a residual join read by two layers, and a frozen layer.
constexpr const char* kNet = R"(
name: "tiny"
layer { name: "input" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "act1" type: "TanH" bottom: "c1" top: "c1" }
layer { name: "conv2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "join" type: "Eltwise" bottom: "c1" bottom: "c2" top: "sum" }
layer { name: "pool" type: "Pooling" bottom: "sum" top: "p"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "p" top: "logits"
        param { lr_mult: 1 } param { lr_mult: 0 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
)";

std::unique_ptr<Net> tiny_net(int batch = 3) {
  NetSource source;
  const auto param = parse_net(kNet, "tiny.prototxt", &source);
  NetOptions options;
  options.batch_size = batch;
  options.sample_shape = {2, 6, 6};
  options.num_classes = 5;
  options.source = source;
  auto net = Net::build(param, options);
  net->init_params(7);
  fill_uniform(net->input(), -1, 1, RngStream{3, RngPurpose::test, 0, 0, 0});
  std::int32_t* labels = net->labels().data<std::int32_t>();
  for (int i = 0; i < batch; ++i) labels[i] = (i * 2) % 5;
  return net;
}

TEST(Net, FlatBufferIsReverseOrderWithFrozenTail) {
  auto net = tiny_net();
  const auto& table = net->param_table();
  ASSERT_EQ(table.size(), 6u);
  EXPECT_EQ(table[0].name, "fc.weight");  // the last layer's gradient is produced first
  EXPECT_EQ(table[0].offset, 0);
  EXPECT_EQ(table[1].name, "conv2.weight");
  EXPECT_EQ(table[4].name, "conv1.bias");
  EXPECT_EQ(table[5].name, "fc.bias");  // lr_mult 0: frozen, trailing, no gradient
  EXPECT_TRUE(table[5].frozen);
  EXPECT_EQ(net->num_trainable(), table[5].offset);
  EXPECT_EQ(net->grads().numel(), net->num_trainable());
  EXPECT_EQ(net->params().numel(), table[5].offset + 5);
  EXPECT_EQ(net->output().shape(), (Shape{3, 5}));
}

TEST(Net, StateDictFollowsPyTorchOrder) {
  auto net = tiny_net();
  const auto sd = net->state_dict();
  ASSERT_EQ(sd.size(), 6u);
  EXPECT_EQ(sd[0].first, "conv1.weight");
  EXPECT_EQ(sd[0].second.shape(), (Shape{4, 2, 3, 3}));
  EXPECT_EQ(sd[5].first, "fc.bias");
  EXPECT_TRUE(sd[0].second.shares_storage(net->params()));
}

// The loss as a function of every trainable parameter, against central differences.
TEST(Net, BackwardMatchesFiniteDifferences) {
  auto net = tiny_net();
  StepContext ctx;
  net->forward(ctx);
  net->backward(ctx, false);
  const auto analytic = net->grads().to_vector();
  float* p = net->params().data<float>();
  const float eps = 1e-2f;
  double diff = 0, ref = 0;
  for (std::int64_t i = 0; i < net->num_trainable(); i += 7) {
    const float saved = p[i];
    p[i] = saved + eps;
    net->forward(ctx);
    const double plus = net->loss().item();
    p[i] = saved - eps;
    net->forward(ctx);
    const double minus = net->loss().item();
    p[i] = saved;
    const double numeric = (plus - minus) / (2 * eps);
    diff += (numeric - analytic[static_cast<std::size_t>(i)]) *
            (numeric - analytic[static_cast<std::size_t>(i)]);
    ref += numeric * numeric;
  }
  // Smooth everywhere (tanh, average pooling), so only fp32 rounding and O(eps^2) remain; a
  // missing residual gradient or a wrong reader sum is off by O(1).
  EXPECT_LT(std::sqrt(diff / ref), 5e-3);
}

TEST(Net, AccumulationAddsMicroBatches) {
  auto net = tiny_net();
  StepContext ctx;
  net->forward(ctx);
  net->backward(ctx, false);
  const Tensor once = net->grads().clone();
  net->forward(ctx);
  net->backward(ctx, true);
  Tensor twice = once.clone();
  ops::scale(2.0f, twice);
  EXPECT_TENSORS_CLOSE(net->grads(), twice, 1e-6);
}

TEST(Net, GradReadyHookCoversEveryTrainableRangeInOrder) {
  auto net = tiny_net();
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  net->set_grad_ready_hook([&](std::int64_t b, std::int64_t e) { ranges.emplace_back(b, e); });
  StepContext ctx;
  net->forward(ctx);
  net->backward(ctx, false);
  ASSERT_FALSE(ranges.empty());
  EXPECT_EQ(ranges.front().first, 0);
  for (std::size_t i = 1; i < ranges.size(); ++i) EXPECT_EQ(ranges[i].first, ranges[i - 1].second);
  EXPECT_EQ(ranges.back().second, net->num_trainable());
}

TEST(Net, ErrorsNameFileLineAndLayer) {
  NetOptions options;
  options.sample_shape = {1, 8, 8};
  options.num_classes = 3;
  auto build = [&](const std::string& text) {
    NetSource source;
    const auto param = parse_net(text, "bad.prototxt", &source);
    options.source = source;
    Net::build(param, options);
  };
  const std::string input = "layer { name: 'in' type: 'Input' top: 'data' top: 'label' }\n";
  EXPECT_EQ(error_of([&] {
              build(input + "layer { name: 'fc' type: 'InnerProduct' bottom: 'dta' top: 'y' }\n");
            }),
            "bad.prototxt:2: layer 'fc' (InnerProduct): bottom 'dta' is not produced by any "
            "earlier layer (blobs so far: data, label)");
  const std::string unknown =
      error_of([&] { build(input + "layer { name: 'x' type: 'Conv' bottom: 'data' top: 'y' }"); });
  EXPECT_NE(unknown.find("bad.prototxt:2: layer 'x' (Conv): unknown layer type 'Conv' (known: "),
            std::string::npos)
      << unknown;
  EXPECT_NE(unknown.find("Convolution"), std::string::npos);
  EXPECT_NE(error_of([&] {
              build("layer { name: 'in' type: 'Input' tpo: 'data' }");
            }).find("bad.prototxt:1:"),
            std::string::npos);
  // A net without a loss (a deploy net) builds; training refuses it
  // (tests/graph/caffe_nets_test.cc).
  EXPECT_EQ(error_of([&] { build(input); }), "");
}

TEST(Net, AutocastIsRefusedOnTheCpu) {
  NetSource source;
  const auto param = parse_net(kNet, "tiny.prototxt", &source);
  NetOptions options;
  options.sample_shape = {2, 6, 6};
  options.num_classes = 5;
  options.source = source;
  options.compute_dtype = DType::bf16;
  EXPECT_EQ(error_of([&] { Net::build(param, options); }),
            "tiny.prototxt: bf16 autocast runs on a CUDA device; the CPU computes in f32");
}

}  // namespace
}  // namespace ruche
