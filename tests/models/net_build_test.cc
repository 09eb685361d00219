// The built-in models through Net::build: the state_dict the Net lays out is torchvision's, every
// model (the autoencoders with their input as target) builds, and fashion_cnn and
// conv_autoencoder run a forward pass to a sane loss. Skipped while a layer type is not registered.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "engine/graph/net.h"
#include "engine/models/models.h"
#include "engine/rng/fill.h"
#include "tests/models/state_dict.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::all_layers_registered;

std::unique_ptr<Net> build(const proto::NetParameter& param, const Shape& sample, int classes,
                           int batch, const Shape& target = {}) {
  NetOptions options;
  options.batch_size = batch;
  options.sample_shape = sample;
  options.num_classes = classes;
  options.target_shape = target;
  return Net::build(param, options);
}

bool is_autoencoder(const std::string& name) { return name.ends_with("_autoencoder"); }

std::vector<std::string> lines_from_text(const Tensor& text) {
  const auto bytes = text.to_vector<std::uint8_t>();
  std::vector<std::string> lines;
  std::string line;
  for (const auto c : bytes) {
    if (c == '\n') {
      lines.push_back(line);
      line.clear();
    } else {
      line += static_cast<char>(c);
    }
  }
  lines.push_back(line);
  return lines;
}

TEST(ModelsNet, NetStateDictIsTorchvisions) {
  struct Case {
    const char* reference;
    const char* model;
    Shape sample;
    int classes;
  };
  // vgg16 at 224 px (1.1 GB of weights and gradients) is left to the layer-level test.
  const Case cases[] = {
      {"models_resnet18_224", "resnet18", {3, 224, 224}, 1000},
      {"models_resnet18_32", "resnet18", {3, 32, 32}, 10},
      {"models_resnet50_224", "resnet50", {3, 224, 224}, 1000},
      {"models_resnet50_32", "resnet50", {3, 32, 32}, 10},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.reference);
    const auto param = builtin_model(c.model, {c.sample, 0});
    if (!all_layers_registered(param)) GTEST_SKIP() << "layer types not all registered yet";
    const auto net = build(param, c.sample, c.classes, 1);
    std::vector<std::string> lines;
    for (const auto& [name, tensor] : net->state_dict()) {
      lines.push_back(name + " " + tensor.shape().str());
    }
    EXPECT_EQ(lines, lines_from_text(testing::reference(c.reference, "state_dict")));
  }
}

TEST(ModelsNet, EveryModelBuildsOnSmallInputs) {
  for (const auto& name : builtin_model_names()) {
    SCOPED_TRACE(name);
    const Shape sample =
        name.starts_with("resnet") || name == "vgg16" ? Shape{3, 32, 32} : Shape{1, 28, 28};
    const auto param = builtin_model(name, {sample, 10});
    if (!all_layers_registered(param)) GTEST_SKIP() << "layer types not all registered yet";
    // An autoencoder's target is the input itself (f32, the sample's shape); its output, the
    // blob the loss reads, is the reconstruction.
    const bool autoencoder = is_autoencoder(name);
    const auto net = build(param, sample, 10, 2, autoencoder ? sample : Shape{});
    // (mlp_autoencoder's is flat, [2, 784]: EuclideanLoss takes an equal count per sample.)
    const Shape expected = name == "conv_autoencoder"  ? Shape{2, 1, 28, 28}
                           : name == "mlp_autoencoder" ? Shape{2, 784}
                                                       : Shape{2, 10};
    EXPECT_EQ(net->output().shape().str(), expected.str());
    if (autoencoder) {
      EXPECT_EQ(net->labels().dtype(), DType::f32);
    }
    std::cout << name << " " << sample.str() << ": " << net->forward_flops() / 2 / 1e6
              << " M multiply-adds per sample\n";
  }
}

TEST(ModelsNet, FashionCnnForwardGivesChanceLoss) {
  const Shape sample{1, 28, 28};
  const auto param = builtin_model("fashion_cnn", {sample, 10});
  if (!all_layers_registered(param)) GTEST_SKIP() << "layer types not all registered yet";
  const int batch = 8;
  auto net = build(param, sample, 10, batch);
  net->init_params(1);
  fill_uniform(net->input(), 0, 1, RngStream{5, RngPurpose::test, 0, 0, 0});
  std::int32_t* labels = net->labels().data<std::int32_t>();
  for (int i = 0; i < batch; ++i) labels[i] = i % 10;
  net->forward({Phase::test});
  const float loss = net->loss().to_vector<float>()[0];
  std::cout << net->summary();
  // Freshly initialised: near ln(10) = 2.30.
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_GT(loss, 1.5f);
  EXPECT_LT(loss, 4.0f);
}

TEST(ModelsNet, ConvAutoencoderForwardGivesAnMse) {
  const Shape sample{1, 28, 28};
  const auto param = builtin_model("conv_autoencoder", {sample, 0});
  const int batch = 4;
  auto net = build(param, sample, 0, batch, sample);
  net->init_params(1);
  fill_uniform(net->input(), 0, 1, RngStream{5, RngPurpose::test, 0, 0, 0});
  net->labels().copy_from(net->input());
  net->forward({Phase::test});
  const float loss = net->loss().to_vector<float>()[0];
  // The mean squared error of a sigmoid near 0.5 against uniform [0, 1] pixels: about 1/12.
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_GT(loss, 0.05f);
  EXPECT_LT(loss, 0.2f);
  // The Net's own parameter count is torch's (tests/models/models_test.cc).
  EXPECT_EQ(net->num_trainable(), 109985);
}

}  // namespace
}  // namespace ruche
