// Net::backward_from_output and the input's gradient (NetOptions::input_grad), what `ruche
// visualize` computes class saliency with: against central finite differences of one class
// score, through an in-place activation, a blob read by two layers, pooling and a frozen bias.
#include <gtest/gtest.h>

#include <vector>

#include "engine/graph/net.h"
#include "engine/rng/fill.h"
#include "tests/support/compare.h"

namespace ruche {
namespace {

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

std::unique_ptr<Net> saliency_net(bool input_grad) {
  NetSource source;
  const auto param = parse_net(kNet, "tiny.prototxt", &source);
  NetOptions options;
  options.batch_size = 1;
  options.sample_shape = {2, 6, 6};
  options.num_classes = 5;
  options.source = source;
  options.input_grad = input_grad;
  auto net = Net::build(param, options);
  net->init_params(7);
  fill_uniform(net->input(), -1, 1, RngStream{3, RngPurpose::test, 0, 0, 0});
  return net;
}

TEST(NetInputGrad, ClassScoreGradientMatchesFiniteDifferences) {
  auto net = saliency_net(true);
  StepContext ctx;
  ctx.phase = Phase::test;
  const int c = 2;
  net->forward(ctx);
  std::vector<float> onehot(5, 0.0f);
  onehot[c] = 1.0f;
  net->backward_from_output(Tensor::from_vector(onehot, Shape{1, 5}), ctx);
  const Tensor analytic = net->input_grad().clone();
  ASSERT_EQ(analytic.shape(), (Shape{1, 2, 6, 6}));

  const float eps = 1e-2f;
  std::vector<float> numeric(static_cast<std::size_t>(analytic.numel()));
  float* x = net->input().data<float>();
  const auto score = [&] {
    net->forward(ctx);
    return static_cast<double>(net->output().data<float>()[c]);
  };
  for (std::size_t i = 0; i < numeric.size(); ++i) {
    const float saved = x[i];
    x[i] = saved + eps;
    const double up = score();
    x[i] = saved - eps;
    const double down = score();
    x[i] = saved;
    numeric[i] = static_cast<float>((up - down) / (2 * eps));
  }
  EXPECT_LT(testing::norm_relative_error(analytic, Tensor::from_vector(numeric, analytic.shape())),
            1e-3);
  // A second call overwrites rather than adds.
  net->forward(ctx);
  net->backward_from_output(Tensor::from_vector(onehot, Shape{1, 5}), ctx);
  EXPECT_LT(testing::norm_relative_error(net->input_grad(), analytic), 1e-7);
}

TEST(NetInputGrad, AbsentUnlessAsked) {
  auto net = saliency_net(false);
  EXPECT_FALSE(net->input_grad().defined());
}

}  // namespace
}  // namespace ruche
