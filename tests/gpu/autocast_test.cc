// Autocast (--precision bf16 / fp16) in the Net: 16-bit activations and gradients, low-precision
// copies of the convolution and inner-product parameters, f32 master weights and gradients in the
// flat buffers. The same net on the CPU in f32 is the reference.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "engine/graph/net.h"
#include "engine/rng/fill.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/half_support.h"
#include "tests/support/compare.h"

namespace ruche {
namespace {

using testing::on_cpu;

// Every layer kind the autocast path touches: convolution with bias, batch norm (f32 parameters
// on 16-bit data), an in-place ReLU, a residual join read by two layers, max pooling, an inner
// product and the loss.
constexpr const char* kNet = R"(
layer { name: "input" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "c1" top: "b1" }
layer { name: "relu1" type: "ReLU" bottom: "b1" top: "b1" }
layer { name: "conv2" type: "Convolution" bottom: "b1" top: "c2"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "join" type: "Eltwise" bottom: "b1" bottom: "c2" top: "sum" }
layer { name: "pool" type: "Pooling" bottom: "sum" top: "p"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "p" top: "logits" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
)";

constexpr int kBatch = 8;

std::unique_ptr<Net> make_net(Device device, DType compute,
                              std::optional<Layout> layout = std::nullopt) {
  NetSource source;
  const auto param = parse_net(kNet, "autocast.prototxt", &source);
  NetOptions options;
  options.batch_size = kBatch;
  options.sample_shape = {3, 8, 8};
  options.num_classes = 5;
  options.source = source;
  options.device = device;
  options.compute_dtype = compute;
  options.layout = layout;
  auto net = Net::build(param, options);
  net->init_params(11);
  Tensor x = Tensor::empty(net->input().shape());
  fill_uniform(x, -1, 1, RngStream{5, RngPurpose::test, 0, 0, 0});
  net->input().copy_from(x);
  std::vector<std::int32_t> labels(kBatch);
  for (int i = 0; i < kBatch; ++i) labels[static_cast<std::size_t>(i)] = (i * 3) % 5;
  net->labels().copy_from(Tensor::from_vector(labels, Shape{kBatch}));
  return net;
}

void step(Net& net, bool accumulate, float loss_scale = 1.0f) {
  StepContext ctx;
  ctx.loss_scale = loss_scale;
  net.forward(ctx);
  net.backward(ctx, accumulate);
}

class Autocast : public ::testing::TestWithParam<DType> {};

// bf16 rounds every activation and gradient to 8 bits of mantissa (2^-8 relative), f16 to 11;
// through a few layers the errors add up to a few times that.
double tolerance(DType t) { return t == DType::bf16 ? 3e-2 : 5e-3; }

TEST_P(Autocast, ForwardAndBackwardMatchTheCpuInF32) {
  RUCHE_REQUIRE_CUDA();
  auto cpu = make_net(Device::cpu(), DType::f32);
  auto gpu = make_net(Device::cuda(0), GetParam());
  step(*cpu, false);
  step(*gpu, false);
  EXPECT_NEAR(gpu->loss().item(), cpu->loss().item(), tolerance(GetParam()) * 2);
  EXPECT_EQ(gpu->params().dtype(), DType::f32);  // the masters stay f32
  EXPECT_EQ(gpu->blob("sum").dtype(), GetParam());
  EXPECT_TENSORS_CLOSE(on_cpu(gpu->grads()), cpu->grads(), tolerance(GetParam()));
  // The state_dict is the f32 masters (what checkpoints and exports save).
  for (const auto& [name, t] : gpu->state_dict()) {
    EXPECT_EQ(t.dtype(), DType::f32) << name;
  }
}

TEST_P(Autocast, AccumulationAddsMicroBatchesInF32) {
  RUCHE_REQUIRE_CUDA();
  auto once = make_net(Device::cuda(0), GetParam());
  step(*once, false);
  auto twice = make_net(Device::cuda(0), GetParam());
  step(*twice, false);
  step(*twice, true);
  Tensor doubled = once->grads().to(Device::cpu());
  ops::scale(2.0f, doubled);
  // Batch norm's running statistics move between the passes, but the batch statistics that the
  // gradients use do not: the two passes give the same gradients.
  EXPECT_TENSORS_CLOSE(on_cpu(twice->grads()), doubled, 1e-6);
}

TEST_P(Autocast, LossScaleMultipliesEveryGradient) {
  RUCHE_REQUIRE_CUDA();
  auto plain = make_net(Device::cuda(0), GetParam());
  step(*plain, false);
  auto scaled = make_net(Device::cuda(0), GetParam());
  step(*scaled, false, 1024.0f);  // a power of two: exact in every dtype
  Tensor back = scaled->grads().to(Device::cpu());
  ops::scale(1.0f / 1024.0f, back);
  EXPECT_TENSORS_CLOSE(back, on_cpu(plain->grads()), 1e-6);
}

// A 16-bit CUDA net plans nhwc (channels-last activations and convolution weight copies); the
// same net kept plain must give the same numbers but for the convolutions' summation order.
TEST_P(Autocast, ChannelsLastPlanMatchesThePlainOne) {
  RUCHE_REQUIRE_CUDA();
  auto nhwc = make_net(Device::cuda(0), GetParam());
  auto plain = make_net(Device::cuda(0), GetParam(), Layout::plain);
  EXPECT_EQ(nhwc->planned_layout(), Layout::nhwc);
  EXPECT_EQ(plain->planned_layout(), Layout::plain);
  EXPECT_GT(nhwc->blocked_blobs(), 0);
  step(*nhwc, false);
  step(*plain, false);
  EXPECT_NEAR(nhwc->loss().item(), plain->loss().item(), tolerance(GetParam()));
  EXPECT_TENSORS_CLOSE(on_cpu(nhwc->grads()), on_cpu(plain->grads()), tolerance(GetParam()));
  // blob() gives users plain tensors.
  EXPECT_TENSORS_CLOSE(testing::values_of(nhwc->blob("sum")),
                       testing::values_of(plain->blob("sum")), tolerance(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, Autocast, ::testing::Values(DType::bf16, DType::f16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace ruche
