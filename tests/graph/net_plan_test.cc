// The CPU net's plans (engine/graph/net_plan.cc): the memory plan's arithmetic, the layout tag and
// the reorder op, and every built-in model trained on the planned path equal to the reference
// path (RUCHE_CPU_REFERENCE=1: plain NCHW, no fusion, no plans) within 1e-5, on 1 and 2 threads,
// with every buffer poisoned (NaN) when its life in the plan ends. A plan that cuts one life short
// is caught by the same comparison.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "engine/graph/memory_plan.h"
#include "engine/graph/net.h"
#include "engine/models/models.h"
#include "engine/rng/fill.h"
#include "ops/ops.h"
#include "tests/support/compare.h"

namespace ruche {
namespace {

// The relative error of a against b, NaN anywhere in a counting as a mismatch.
double relative_error(const Tensor& a, const Tensor& b) {
  for (float v : a.to_vector<float>()) {
    if (!std::isfinite(v)) return INFINITY;
  }
  return testing::norm_relative_error(a, b);
}

TEST(MemoryPlan, BuffersShareBytesOnlyWhenTheirLivesDoNotOverlap) {
  const std::vector<BufferLife> lives = {{1000, 0, 4}, {500, 5, 9},  {700, 3, 6},
                                         {100, 7, 7},  {2000, 8, 9}, {64, 0, 9}};
  const MemoryPlan plan = plan_memory(lives);
  ASSERT_EQ(plan.offsets.size(), lives.size());
  for (std::size_t i = 0; i < lives.size(); ++i) {
    EXPECT_EQ(plan.offsets[i] % 64, 0u);
    EXPECT_LE(plan.offsets[i] + lives[i].bytes, plan.peak);
    for (std::size_t j = i + 1; j < lives.size(); ++j) {
      const bool together = lives[i].first <= lives[j].last && lives[j].first <= lives[i].last;
      const bool apart = plan.offsets[i] + lives[i].bytes <= plan.offsets[j] ||
                         plan.offsets[j] + lives[j].bytes <= plan.offsets[i];
      EXPECT_TRUE(apart || !together) << "buffers " << i << " and " << j << " overlap";
    }
  }
  EXPECT_LT(plan.peak, plan.naive);  // 0 and 1, 0 and 4 can share
  EXPECT_EQ(plan.naive, 1024u + 512 + 704 + 128 + 2048 + 64);
}

TEST(Layout, ReorderToBlockedPutsChannelBlocksInnermost) {
  const Layout blocked = ops::cpu_blocked_layout();
  if (blocked == Layout::plain) GTEST_SKIP() << "oneDNN picks no blocked layout on this CPU";
  const auto b = static_cast<int>(channel_block(blocked, 0));
  const Shape shape{2, 2 * b, 3, 5};
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  const Tensor plain = Tensor::from_vector(values, shape);
  Tensor packed = Tensor::empty(shape).with_layout(blocked);
  ops::reorder(plain, packed);
  // [N][C/b][H][W][b]: element (n, c, h, w) at (((n * C/b + c / b) * H + h) * W + w) * b + c % b.
  const float* p = packed.data<float>();
  for (std::int64_t n = 0; n < 2; ++n) {
    for (std::int64_t c = 0; c < 2 * b; ++c) {
      for (std::int64_t h = 0; h < 3; ++h) {
        for (std::int64_t w = 0; w < 5; ++w) {
          const std::int64_t at = (((n * 2 + c / b) * 3 + h) * 5 + w) * b + c % b;
          ASSERT_EQ(p[at], values[static_cast<std::size_t>(((n * 2 * b + c) * 3 + h) * 5 + w)]);
        }
      }
    }
  }
  Tensor back = Tensor::empty(shape);
  ops::reorder(packed, back);
  EXPECT_EQ(back.to_vector<float>(), values);
  EXPECT_EQ(packed.clone().layout(), blocked);
}

TEST(Layout, PlainOpsRefuseBlockedTensorsNamingThemselves) {
  const Layout blocked = ops::cpu_blocked_layout();
  if (blocked == Layout::plain) GTEST_SKIP() << "oneDNN picks no blocked layout on this CPU";
  const Shape shape{1, channel_block(blocked, 0), 2, 2};
  const Tensor x = Tensor::zeros(shape).with_layout(blocked);
  Tensor y = Tensor::zeros(shape);
  try {
    ops::softmax_axis_forward(x, y, 1);
    FAIL() << "softmax_axis_forward took a blocked tensor";
  } catch (const InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("softmax_axis_forward"), std::string::npos) << e.what();
  }
  // Element-wise ops take any layout, one for all their tensors.
  EXPECT_THROW(ops::add(x, y, y), InternalError);
  Tensor z = Tensor::zeros(shape).with_layout(blocked);
  EXPECT_NO_THROW(ops::add(x, x, z));
  EXPECT_THROW(x.view({-1}), InternalError);
  EXPECT_THROW(y.copy_from(x), InternalError);
}

// The convolutions of a ResNet block that downsamples (3x3 stride 2 and the 1x1 stride 2
// shortcut), their backward data on blocked tensors against the same on plain ones.
TEST(Layout, StridedConvolutionBackwardDataOnBlockedTensors) {
  const Layout blocked = ops::cpu_blocked_layout();
  if (blocked == Layout::plain || !ops::takes_blocked("conv2d_backward_data")) {
    GTEST_SKIP() << "no blocked convolutions here";
  }
  for (const int k : {3, 1}) {
    ops::Conv2dParams p;
    p.stride_h = p.stride_w = 2;
    p.pad_h = p.pad_w = k / 2;
    const Shape x{4, 64, 32, 32}, w{128, 64, k, k};
    Tensor weights = Tensor::empty(w), dy = Tensor::empty(ops::conv2d_output_shape(x, w, p));
    fill_uniform(weights, -1, 1, RngStream{5, RngPurpose::test, 0, 0, 0});
    fill_uniform(dy, -1, 1, RngStream{6, RngPurpose::test, 0, 0, 0});
    Tensor dx_plain = Tensor::empty(x);
    ops::conv2d_backward_data(dy, weights, dx_plain, p);
    Tensor dy_blocked = Tensor::empty(dy.shape()).with_layout(blocked);
    ops::reorder(dy, dy_blocked);
    Tensor dx_blocked = Tensor::empty(x).with_layout(blocked);
    dx_blocked.fill(std::nanf(""));  // every element must be written
    ops::conv2d_backward_data(dy_blocked, weights, dx_blocked, p);
    Tensor dx = Tensor::empty(x);
    ops::reorder(dx_blocked, dx);
    EXPECT_LE(relative_error(dx, dx_plain), 1e-6) << k << "x" << k << " stride 2";
  }
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

struct Outcome {
  Tensor loss, output, grads, params, buffers, input_grad;
  int blocked = 0, reorders = 0;
  Layout layout = Layout::plain;
  MemoryPlan plan;
};

// A built-in model at batch 2 with 5 classes (`options` gives the rest), its parameters
// initialised and one batch of input and labels (targets for an autoencoder) in place.
std::unique_ptr<Net> build_with_a_batch(const std::string& model, const Shape& sample,
                                        NetOptions options = {}) {
  ModelOptions model_options;
  model_options.sample_shape = sample;
  model_options.num_classes = 5;
  model_options.bottleneck = 8;
  options.batch_size = 2;
  options.sample_shape = sample;
  options.num_classes = 5;
  const bool reconstructs = model.find("autoencoder") != std::string::npos;
  if (reconstructs) options.target_shape = sample;
  auto net = Net::build(builtin_model(model, model_options), options);
  net->init_params(7);
  fill_uniform(net->input(), -1, 1, RngStream{3, RngPurpose::test, 0, 0, 0});
  if (reconstructs) {
    fill_uniform(net->labels(), 0, 1, RngStream{4, RngPurpose::test, 0, 0, 0});
  } else {
    for (int i = 0; i < options.batch_size; ++i) net->labels().data<std::int32_t>()[i] = 3 * i % 5;
  }
  return net;
}

// A forward and backward pass, then three SGD steps (params -= 0.01 grads) on the same batch.
Outcome train_three_steps(const std::string& model, const Shape& sample, bool reference,
                          const NetOptions& options = {}) {
  ops::set_cpu_reference_path(reference);
  auto net = build_with_a_batch(model, sample, options);
  StepContext ctx;
  Outcome out;
  net->forward(ctx);
  out.output = net->output().clone();
  net->backward(ctx, false);
  out.grads = net->grads().clone();
  for (int step = 0; step < 3; ++step) {
    ops::axpy(-0.01f, net->grads(), net->params());
    ctx.step = static_cast<std::uint32_t>(step + 1);
    net->forward(ctx);
    net->backward(ctx, false);
  }
  out.loss = net->loss().clone();
  out.params = net->params().clone();
  out.buffers = net->buffers().clone();
  out.blocked = net->blocked_blobs();
  out.reorders = net->planned_reorders();
  out.layout = net->planned_layout();
  out.plan = net->memory_plan();
  ops::set_cpu_reference_path(false);
  return out;
}

// How far the planned path may be from the reference: forward (output) and the rest (gradients,
// and the loss, parameters and buffers after three steps).
struct Bounds {
  double output = 1e-5, rest = 1e-5;
};

void expect_same_training(const Outcome& planned, const Outcome& reference, const Bounds& bounds,
                          const std::string& what) {
  EXPECT_LE(relative_error(planned.output, reference.output), bounds.output) << what << ": output";
  EXPECT_LE(relative_error(planned.grads, reference.grads), bounds.rest) << what << ": gradients";
  EXPECT_LE(relative_error(planned.loss, reference.loss), bounds.rest)
      << what << ": loss, 3 steps on";
  EXPECT_LE(relative_error(planned.params, reference.params), bounds.rest)
      << what << ": parameters";
  if (planned.buffers.numel() > 0) {
    EXPECT_LE(relative_error(planned.buffers, reference.buffers), bounds.rest)
        << what << ": buffers";
  }
}

struct ModelCase {
  const char* name;
  Shape sample;
  Bounds bounds;
};

// ResNet-50's bounds are fp32's, not the plan's: blocked and plain kernels sum in other orders,
// and 53 batch norms over 2 samples (layer4 normalises 2 values per channel here) grow the 1e-7
// differences to 1.4e-5 at the output and 1e-3 at layer4's activations, where 10 of 262144 ReLU
// inputs change sign (measured); a flipped ReLU moves its element's whole gradient, so the
// gradients agree to 2e-2 and the parameters after three steps to 4e-2 only. The faults this test
// is for (a missing reorder, a gradient not summed, a buffer reused too early) move them by O(1),
// and resnet18 (the same layers, 2 samples per 8x8 plane at its deepest) holds them to 1e-5.
const ModelCase kModels[] = {{"mlp", {1, 12, 12}, {}},
                             {"lenet", {1, 28, 28}, {}},
                             {"fashion_cnn", {1, 16, 16}, {}},
                             {"resnet18", {3, 32, 32}, {}},
                             {"resnet50", {3, 32, 32}, {1e-4, 1e-1}},
                             {"vgg16", {3, 32, 32}, {}},
                             {"mlp_autoencoder", {1, 12, 12}, {}},
                             {"conv_autoencoder", {1, 28, 28}, {}}};

TEST(NetPlan, EveryBuiltInModelIsTested) {
  EXPECT_EQ(std::size(kModels), builtin_model_names().size()) << "a model is missing in kModels";
}

class EveryModel : public ::testing::TestWithParam<std::tuple<ModelCase, int>> {};

TEST_P(EveryModel, TrainsAsOnTheReferencePathWithFreedBuffersPoisoned) {
  const auto& [m, threads] = GetParam();
  const ScopedEnv poison("RUCHE_MEMORY_PLAN_POISON", "1");
  ops::set_num_threads(threads);
  const std::string what = std::string(m.name) + " on " + std::to_string(threads) + " threads";
  const Outcome reference = train_three_steps(m.name, m.sample, true);
  const Outcome planned = train_three_steps(m.name, m.sample, false);
  ops::set_num_threads(0);
  expect_same_training(planned, reference, m.bounds, what);
  EXPECT_LT(planned.plan.peak, planned.plan.naive) << what << ": gradients share no bytes";
  if (ops::takes_blocked("conv2d_forward") && ops::cpu_blocked_layout() != Layout::plain &&
      std::string(m.name).find("resnet") == 0) {
    EXPECT_GT(planned.blocked, 0) << what << ": no blob kept blocked";
  }
}

INSTANTIATE_TEST_SUITE_P(NetPlan, EveryModel,
                         ::testing::Combine(::testing::ValuesIn(kModels), ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" +
                                  std::to_string(std::get<1>(info.param)) + "threads";
                         });

// The channels-last plan a 16-bit CUDA net gets, run on the CPU: the planner's part of it (which
// blobs go nhwc, the input reordered for the first convolution, shadows and their gradients) is
// the same code on both devices, and oneDNN computes nhwc here as cuDNN does there. ResNet-18's
// residual joins and strided shortcuts are the cases worth having, but in nhwc one of layer2.1's
// 16384 ReLU inputs is 1.8e-7 and changes sign (measured), which moves the gradients below it by
// 1e-3 and three steps' loss by 6e-4: its gradients get 1e-2, still far below the O(1) of a
// missing reorder or a gradient not summed.
TEST(NetPlan, ChannelsLastPlanTrainsAsTheReferencePath) {
  NetOptions nhwc;
  nhwc.layout = Layout::nhwc;
  const ModelCase resnet18 = {"resnet18", {3, 32, 32}, {1e-5, 1e-2}};
  for (const auto& m : {kModels[2], resnet18, kModels[5], kModels[7]}) {
    const Outcome reference = train_three_steps(m.name, m.sample, true);
    const Outcome planned = train_three_steps(m.name, m.sample, false, nhwc);
    expect_same_training(planned, reference, m.bounds, std::string(m.name) + " in nhwc");
    EXPECT_EQ(planned.layout, Layout::nhwc) << m.name;
    EXPECT_GT(planned.blocked, 0) << m.name << ": no blob kept nhwc";
    EXPECT_GT(planned.reorders, 0) << m.name << ": the first convolution read plain input";
  }
}

// An inception-style join: two branches concatenated along the channels, read by a batch norm.
constexpr const char* kConcatNet = R"(
layer { name: "input" type: "Input" top: "data" top: "label" }
layer { name: "stem" type: "Convolution" bottom: "data" top: "stem"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "stem" top: "stem" }
layer { name: "a" type: "Convolution" bottom: "stem" top: "a"
        convolution_param { num_output: 16 kernel_size: 1 } }
layer { name: "b" type: "Convolution" bottom: "stem" top: "b"
        convolution_param { num_output: 32 kernel_size: 3 pad: 1 } }
layer { name: "join" type: "Concat" bottom: "a" bottom: "b" top: "join" }
layer { name: "bn" type: "BatchNorm" bottom: "join" top: "bn" }
layer { name: "pool" type: "Pooling" bottom: "bn" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
)";

struct ConcatOutcome {
  Tensor loss, grads, params;
  int reorders = 0;
};

ConcatOutcome train_concat_net(bool reference, std::optional<Layout> layout) {
  ops::set_cpu_reference_path(reference);
  NetOptions options;
  options.batch_size = 4;
  options.sample_shape = {3, 8, 8};
  options.num_classes = 5;
  options.layout = layout;
  auto net = Net::build(parse_net(kConcatNet, "concat.prototxt", nullptr), options);
  net->init_params(3);
  fill_uniform(net->input(), -1, 1, RngStream{8, RngPurpose::test, 0, 0, 0});
  for (int i = 0; i < 4; ++i) net->labels().data<std::int32_t>()[i] = i;
  StepContext ctx;
  for (int step = 0; step < 3; ++step) {
    net->forward(ctx);
    net->backward(ctx, false);
    ops::axpy(-0.01f, net->grads(), net->params());
  }
  ConcatOutcome out{net->loss().clone(), net->grads().clone(), net->params().clone(),
                    net->planned_reorders()};
  ops::set_cpu_reference_path(false);
  return out;
}

// Concat copies whole channel blocks, so a join stays in the planned layout: the only reorders
// left are the ones the net needs anyway (the input for an nhwc plan, the inner product's input).
TEST(NetPlan, ConcatAlongChannelsKeepsThePlannedLayout) {
  const ConcatOutcome reference = train_concat_net(true, std::nullopt);
  for (const Layout layout : {ops::cpu_blocked_layout(), Layout::nhwc}) {
    if (layout == Layout::plain) continue;
    const std::string what(layout_name(layout));
    const ConcatOutcome planned = train_concat_net(false, layout);
    EXPECT_LE(relative_error(planned.loss, reference.loss), 1e-5) << what;
    EXPECT_LE(relative_error(planned.grads, reference.grads), 1e-5) << what;
    EXPECT_LE(relative_error(planned.params, reference.params), 1e-5) << what;
    EXPECT_EQ(planned.reorders, layout == Layout::nhwc ? 2 : 1) << what;
  }
}

// The input's gradient in eval mode (`ruche visualize`'s saliency): batch norm's eval backward
// takes plain tensors, so on a blocked net it reorders around them.
Tensor saliency(bool reference) {
  ops::set_cpu_reference_path(reference);
  NetOptions options;
  options.input_grad = true;
  auto net = build_with_a_batch("fashion_cnn", {1, 16, 16}, options);
  StepContext ctx;
  ctx.phase = Phase::test;
  net->forward(ctx);
  std::vector<float> onehot(10, 0.0f);
  onehot[2] = onehot[5 + 4] = 1.0f;
  net->backward_from_output(Tensor::from_vector(onehot, Shape{2, 5}), ctx);
  Tensor grad = net->input_grad().clone();
  ops::set_cpu_reference_path(false);
  return grad;
}

TEST(NetPlan, EvalModeBackwardMatchesTheReferencePath) {
  const Tensor reference = saliency(true);
  EXPECT_LE(relative_error(saliency(false), reference), 1e-5);
}

// A test-phase forward after one SGD step (so the running statistics are not the initial ones),
// with batch norms folded into the convolutions before them unless `fold` is off.
struct Evaluated {
  Tensor output;
  int folded = 0;
};

Evaluated evaluate_after_a_step(const std::string& model, const Shape& sample, bool reference,
                                bool fold) {
  ops::set_cpu_reference_path(reference);
  NetOptions options;
  options.fold_batch_norms = fold;
  auto net = build_with_a_batch(model, sample, options);
  StepContext ctx;
  net->forward(ctx);
  net->backward(ctx, false);
  ops::axpy(-0.01f, net->grads(), net->params());
  ctx.phase = Phase::test;
  fill_uniform(net->input(), -1, 1, RngStream{4, RngPurpose::test, 0, 0, 0});
  net->forward(ctx);
  Evaluated out{net->output().clone(), net->folded_batch_norms()};
  ops::set_cpu_reference_path(false);
  return out;
}

TEST(NetPlan, TestPhaseWithBatchNormsFoldedMatchesTheReferencePath) {
  for (const auto& [model, sample] :
       {std::pair<std::string, Shape>{"fashion_cnn", {1, 16, 16}}, {"resnet18", {3, 32, 32}}}) {
    const Evaluated reference = evaluate_after_a_step(model, sample, true, true);
    const Evaluated folded = evaluate_after_a_step(model, sample, false, true);
    EXPECT_EQ(reference.folded, 0) << model << ": the reference path folds nothing";
    EXPECT_GT(folded.folded, 0) << model << ": no batch norm folded";
    EXPECT_LE(relative_error(folded.output, reference.output), 1e-5) << model;
    EXPECT_EQ(evaluate_after_a_step(model, sample, false, false).folded, 0) << model;
  }
}

TEST(NetPlan, APlanThatCutsALifeShortIsCaught) {
  const ScopedEnv poison("RUCHE_MEMORY_PLAN_POISON", "1");
  const Outcome reference = train_three_steps("fashion_cnn", {1, 16, 16}, true);
  const ScopedEnv shorten("RUCHE_MEMORY_PLAN_SHORTEN", "1");
  const Outcome broken = train_three_steps("fashion_cnn", {1, 16, 16}, false);
  EXPECT_GT(relative_error(broken.grads, reference.grads), 1e-5)
      << "a gradient freed before its reader went unnoticed";
}

}  // namespace
}  // namespace ruche
