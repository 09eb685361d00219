// Layer fusion on CPU nets (engine/graph/fusion.h): which ReLUs are fused, and a fused net's
// forward, backward and test-phase output equal to the reference path's (RUCHE_CPU_REFERENCE=1,
// no fusion) within 1e-5.
#include "engine/graph/fusion.h"

#include <gtest/gtest.h>

#include "engine/graph/net.h"
#include "engine/models/models.h"
#include "engine/proto/text_format.h"
#include "engine/rng/fill.h"
#include "ops/ops.h"
#include "tests/support/compare.h"

namespace ruche {
namespace {

// conv1 -> relu1 in place (fused), conv2 -> bn2 -> relu2 in place (fused into bn2), conv3 read
// by a ReLU into a new blob and by a pooling (not fused), conv4 -> a leaky ReLU in place (not
// fused), conv5 -> relu5 in place (fused).
constexpr const char* kNet = R"(
name: "fusion"
layer { name: "input" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "conv2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn2" type: "BatchNorm" bottom: "c2" top: "b2" }
layer { name: "relu2" type: "ReLU" bottom: "b2" top: "b2" }
layer { name: "conv3" type: "Convolution" bottom: "b2" top: "c3"
        convolution_param { num_output: 8 kernel_size: 1 } }
layer { name: "relu3" type: "ReLU" bottom: "c3" top: "r3" }
layer { name: "pool3" type: "Pooling" bottom: "c3" top: "p3"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool3b" type: "Pooling" bottom: "r3" top: "p3b"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "join" type: "Eltwise" bottom: "p3" bottom: "p3b" top: "j" }
layer { name: "conv4" type: "Convolution" bottom: "j" top: "c4"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "leaky" type: "ReLU" bottom: "c4" top: "c4" relu_param { negative_slope: 0.1 } }
layer { name: "conv5" type: "Convolution" bottom: "c4" top: "c5"
        convolution_param { num_output: 6 kernel_size: 3 } }
layer { name: "relu5" type: "ReLU" bottom: "c5" top: "c5" }
layer { name: "fc" type: "InnerProduct" bottom: "c5" top: "logits" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
)";

TEST(Fusion, FusesInPlaceReluAfterConvolutionAndBatchNormOnly) {
  const proto::NetParameter param = parse_net(kNet, "fusion.prototxt", nullptr);
  std::vector<std::unique_ptr<Layer>> layers;
  for (const auto& lp : param.layer()) layers.push_back(create_layer(lp));
  // The blob indices Net::build gives kNet (an in-place top is a new version): data 0, label 1,
  // c1 2, c1' 3, c2 4, b2 5, b2' 6, c3 7, r3 8, p3 9, p3b 10, j 11, c4 12, c4' 13, c5 14,
  // c5' 15, logits 16, loss 17.
  const std::vector<std::vector<int>> bottoms = {{},   {0},  {2},  {3},  {4},     {5},
                                                 {6},  {7},  {7},  {8},  {9, 10}, {11},
                                                 {12}, {13}, {14}, {15}, {16, 1}};
  const std::vector<std::vector<int>> tops = {{0, 1}, {2},  {3},  {4},  {5},  {6},  {7},  {8}, {9},
                                              {10},   {11}, {12}, {13}, {14}, {15}, {16}, {17}};
  EXPECT_EQ(fuse_relus(param, layers, bottoms, tops), 3);  // relu1, relu2, relu5
}

// The same net built on the reference path and on the fast path, from the same parameters and
// input: loss, output, every gradient, and the test phase's output.
void expect_paths_agree(const proto::NetParameter& param, const Shape& sample, int classes) {
  NetOptions options;
  options.batch_size = 4;
  options.sample_shape = sample;
  options.num_classes = classes;
  struct Result {
    Tensor loss, output, grads, test_output;
  } result[2];
  for (const bool reference : {true, false}) {
    ops::set_cpu_reference_path(reference);
    auto net = Net::build(param, options);
    net->init_params(5);
    fill_uniform(net->input(), -1, 1, RngStream{3, RngPurpose::test, 0, 0, 0});
    std::int32_t* labels = net->labels().data<std::int32_t>();
    for (int i = 0; i < options.batch_size; ++i) labels[i] = (i * 3) % classes;
    StepContext ctx;
    net->forward(ctx);
    net->backward(ctx, false);
    Result& r = result[reference ? 0 : 1];
    r.loss = net->loss().clone();
    r.output = net->output().clone();
    r.grads = net->grads().clone();
    ctx.phase = Phase::test;
    net->forward(ctx);
    r.test_output = net->output().clone();
  }
  ops::set_cpu_reference_path(false);
  EXPECT_TENSORS_CLOSE(result[1].loss, result[0].loss, 1e-5);
  EXPECT_TENSORS_CLOSE(result[1].output, result[0].output, 1e-5);
  EXPECT_TENSORS_CLOSE(result[1].grads, result[0].grads, 1e-5);
  EXPECT_TENSORS_CLOSE(result[1].test_output, result[0].test_output, 1e-5);
}

TEST(Fusion, FusedNetMatchesReferencePath) {
  expect_paths_agree(parse_net(kNet, "fusion.prototxt", nullptr), {3, 8, 8}, 5);
}

TEST(Fusion, FashionCnnMatchesReferencePath) {
  ModelOptions options;
  options.num_classes = 10;
  expect_paths_agree(builtin_model("fashion_cnn", options), {1, 28, 28}, 10);
}

}  // namespace
}  // namespace ruche
