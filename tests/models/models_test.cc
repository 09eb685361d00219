// Built-in models: every one prints to prototxt and parses back unchanged, is a well-formed net
// (Input first, its loss last: SoftmaxWithLoss for the classifiers, EuclideanLoss against the
// input for the autoencoders; every bottom written before it is read), has the expected
// parameter count; unknown names and unfit inputs are errors.
#include "engine/models/models.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "engine/proto/text_format.h"
#include "tests/models/state_dict.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::expected_state_dict;
using testing::learnable_count;

std::int64_t params_of(const std::string& name, const Shape& sample, int num_classes) {
  return learnable_count(
      expected_state_dict(builtin_model(name, {sample, num_classes}), num_classes));
}

const std::set<std::string> kAutoencoders = {"conv_autoencoder", "mlp_autoencoder"};

bool is_autoencoder(const std::string& name) { return kAutoencoders.count(name) > 0; }

std::vector<std::string> classifier_names() {
  std::vector<std::string> names;
  for (const auto& name : builtin_model_names()) {
    if (!is_autoencoder(name)) names.push_back(name);
  }
  return names;
}

TEST(Models, EveryModelRoundTripsThroughPrototxt) {
  for (const auto& name : builtin_model_names()) {
    SCOPED_TRACE(name);
    const proto::NetParameter net = builtin_model(name, {});
    const std::string text = to_prototxt(net);
    proto::NetParameter parsed;
    parse_prototxt(text, name + ".prototxt", parsed);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(net, parsed));
    EXPECT_EQ(to_prototxt(parsed), text);
    std::cout << name << ": " << net.layer_size() << " layers, " << text.size()
              << " bytes of prototxt\n";
  }
}

TEST(Models, EveryModelIsAWellFormedNet) {
  for (const auto& name : builtin_model_names()) {
    SCOPED_TRACE(name);
    const proto::NetParameter net = builtin_model(name, {});
    const auto& loss = net.layer(net.layer_size() - 1);
    EXPECT_EQ(loss.type(), is_autoencoder(name) ? "EuclideanLoss" : "SoftmaxWithLoss");
  }
}

TEST(Models, EveryClassifierIsAWellFormedNet) {
  for (const auto& name : classifier_names()) {
    SCOPED_TRACE(name);
    const proto::NetParameter net = builtin_model(name, {});
    EXPECT_EQ(net.name(), name);
    ASSERT_GE(net.layer_size(), 3);
    const auto& input = net.layer(0);
    EXPECT_EQ(input.type(), "Input");
    EXPECT_EQ(std::vector<std::string>(input.top().begin(), input.top().end()),
              (std::vector<std::string>{"data", "label"}));
    const auto& loss = net.layer(net.layer_size() - 1);
    EXPECT_EQ(loss.type(), "SoftmaxWithLoss");
    ASSERT_EQ(loss.bottom_size(), 2);
    EXPECT_EQ(loss.bottom(1), "label");
    EXPECT_EQ(std::vector<std::string>(loss.top().begin(), loss.top().end()),
              std::vector<std::string>{"loss"});

    std::set<std::string> layer_names, blobs;
    for (const auto& layer : net.layer()) {
      SCOPED_TRACE(layer.name());
      EXPECT_TRUE(layer_names.insert(layer.name()).second) << "duplicate layer name";
      for (const auto& bottom : layer.bottom()) EXPECT_TRUE(blobs.count(bottom)) << bottom;
      const bool in_place = layer.type() == "ReLU" || layer.type() == "Dropout";
      for (const auto& top : layer.top()) {
        if (in_place) {
          EXPECT_EQ(layer.bottom(0), top) << "ReLU and Dropout run in place";
        } else {
          EXPECT_TRUE(blobs.insert(top).second) << "blob " << top << " written twice";
        }
      }
    }
    // The shapes fit all the way down (throws otherwise).
    EXPECT_NO_THROW(expected_state_dict(net, 10));
  }
}

TEST(Models, UnknownNameListsTheKnownOnes) {
  const std::string message = error_of([] { builtin_model("resnet19", {}); });
  EXPECT_NE(message.find("unknown model 'resnet19'"), std::string::npos) << message;
  for (const auto& name : builtin_model_names()) {
    EXPECT_NE(message.find(name), std::string::npos) << message;
  }
  EXPECT_EQ(builtin_model_names(),
            (std::vector<std::string>{"conv_autoencoder", "fashion_cnn", "lenet", "mlp",
                                      "mlp_autoencoder", "resnet18", "resnet50", "vgg16"}));
  EXPECT_EQ(std::string(kDefaultModel), "fashion_cnn");
}

TEST(Models, InputShapeAndClassesAreWrittenIntoTheNet) {
  const auto net = builtin_model("lenet", {{3, 32, 32}, 7});
  EXPECT_EQ(std::vector<std::int64_t>(net.layer(0).input_param().dim().begin(),
                                      net.layer(0).input_param().dim().end()),
            (std::vector<std::int64_t>{3, 32, 32}));
  EXPECT_EQ(net.layer(net.layer_size() - 2).inner_product_param().num_output(), 7u);
  // Defaults: the model's usual input, classes left to the dataset.
  const auto resnet = builtin_model("resnet18", {});
  EXPECT_EQ(resnet.layer(0).input_param().dim_size(), 3);
  EXPECT_EQ(resnet.layer(0).input_param().dim(1), 224);
  EXPECT_EQ(resnet.layer(resnet.layer_size() - 2).name(), "fc");
  EXPECT_EQ(resnet.layer(resnet.layer_size() - 2).inner_product_param().num_output(), 0u);
}

TEST(Models, UnfitInputsAreErrors) {
  EXPECT_NE(error_of([] {
              builtin_model("lenet", {{784}, 10});
            }).find("[C, H, W]"),
            std::string::npos);
  EXPECT_NO_THROW(builtin_model("mlp", {{784}, 10}));
  EXPECT_NE(error_of([] {
              builtin_model("vgg16", {{3, 16, 16}, 10});
            }).find("32 to 255"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              builtin_model("vgg16", {{3, 256, 256}, 10});
            }).find("32 to 255"),
            std::string::npos);
  EXPECT_NE(error_of([] { builtin_model("mlp", {{1, 0, 28}, 10}); }), "");
  EXPECT_NE(error_of([] { builtin_model("mlp", {{1, 28, 28}, -1}); }), "");
}

TEST(Models, ParameterCounts) {
  const Shape mnist{1, 28, 28};
  const Shape imagenet{3, 224, 224};
  EXPECT_EQ(params_of("mlp", mnist, 10), 235146);
  EXPECT_EQ(params_of("lenet", mnist, 10), 61706);
  // torchvision's counts (sum of p.numel() over model.parameters()).
  EXPECT_EQ(params_of("resnet18", imagenet, 1000), 11689512);
  EXPECT_EQ(params_of("resnet50", imagenet, 1000), 25557032);
  EXPECT_EQ(params_of("vgg16", imagenet, 1000), 138357544);
  const std::int64_t fashion = params_of("fashion_cnn", mnist, 10);
  std::cout << "fashion_cnn: " << fashion << " parameters\n";
  EXPECT_GE(fashion, 800000);
  EXPECT_LE(fashion, 1200000);
  for (const auto& name : builtin_model_names()) {
    std::cout << name << ": " << params_of(name, {}, 10) << " parameters (default input, 10 "
              << "classes)\n";
  }
}

// The autoencoders: EuclideanLoss between the reconstruction and "label", the target the loaders
// fill with the input itself, so the last layer before the loss gives the input's shape back.
TEST(Models, AutoencodersReconstructTheirInput) {
  for (const auto& name : kAutoencoders) {
    for (const Shape& sample : {Shape{1, 28, 28}, Shape{3, 32, 32}}) {
      SCOPED_TRACE(name + " " + sample.str());
      const proto::NetParameter net = builtin_model(name, {sample, 0, 8});
      const auto& input = net.layer(0);
      EXPECT_EQ(input.type(), "Input");
      EXPECT_EQ(std::vector<std::string>(input.top().begin(), input.top().end()),
                (std::vector<std::string>{"data", "label"}));
      const auto& loss = net.layer(net.layer_size() - 1);
      EXPECT_EQ(loss.type(), "EuclideanLoss");
      ASSERT_EQ(loss.bottom_size(), 2);
      EXPECT_EQ(loss.bottom(1), "label");
      EXPECT_EQ(net.layer(net.layer_size() - 2).type(), "Sigmoid") << "the target is in [0, 1]";
      // The shapes fit down to the loss, whose target is the input (throws otherwise).
      EXPECT_NO_THROW(expected_state_dict(net, 0));
      // No classifier: nothing takes its width from the dataset's classes.
      EXPECT_EQ(learnable_count(expected_state_dict(net, 0)),
                learnable_count(expected_state_dict(net, 1000)));
    }
  }
  // Only the images the conv decoder mirrors.
  EXPECT_NE(error_of([] {
              builtin_model("conv_autoencoder", {{1, 24, 24}, 0});
            }).find("28x28 or 32x32"),
            std::string::npos);
  EXPECT_NO_THROW(builtin_model("mlp_autoencoder", {{100}, 0}));
  EXPECT_NE(error_of([] { builtin_model("conv_autoencoder", {{1, 28, 28}, 0, -1}); }), "");
}

TEST(Models, AutoencoderParameterCounts) {
  // torch.nn's counts (sum of p.numel() over model.parameters()) of the same Sequential:
  // Linear 784-256-32-256-784; Conv2d(C,16,3,2,1), Conv2d(16,32,3,2,1), Conv2d(32,32,H/4),
  // ConvTranspose2d(32,32,H/4), ConvTranspose2d(32,16,3,2,1,output_padding=1), Upsample(2),
  // Conv2d(16,C,3,padding=1).
  EXPECT_EQ(params_of("mlp_autoencoder", {1, 28, 28}, 0), 419120);
  EXPECT_EQ(params_of("conv_autoencoder", {1, 28, 28}, 0), 109985);
  EXPECT_EQ(params_of("conv_autoencoder", {3, 32, 32}, 0), 141283);
  // The deconvolutions' weights are [in, out, k, k], as ConvTranspose2d's.
  std::map<std::string, Shape> shapes;
  for (const auto& e : expected_state_dict(builtin_model("conv_autoencoder", {{1, 28, 28}, 0}), 0))
    shapes[e.name] = e.shape;
  EXPECT_EQ(shapes["dec1.weight"], (Shape{32, 32, 7, 7}));
  EXPECT_EQ(shapes["dec2.weight"], (Shape{32, 16, 3, 3}));
  EXPECT_EQ(shapes["dec3.weight"], (Shape{1, 16, 3, 3}));
}

TEST(Models, SmallInputsTakeTheCifarHeads) {
  // resnet: 3x3 stem without max pool up to 64 px, ImageNet's above.
  const auto small = builtin_model("resnet18", {{3, 64, 64}, 10});
  EXPECT_EQ(small.layer(1).convolution_param().kernel_size(), 3u);
  for (const auto& layer : small.layer()) EXPECT_NE(layer.name(), "maxpool");
  const auto large = builtin_model("resnet18", {{3, 96, 96}, 10});
  EXPECT_EQ(large.layer(1).convolution_param().kernel_size(), 7u);
  EXPECT_EQ(large.layer(4).name(), "maxpool");
  // vgg16 under 224 px: global average pool and a 512-wide classifier.
  const auto entries = expected_state_dict(builtin_model("vgg16", {{3, 32, 32}, 10}), 10);
  std::map<std::string, Shape> shapes;
  for (const auto& e : entries) shapes[e.name] = e.shape;
  EXPECT_EQ(shapes["classifier.0.weight"], (Shape{512, 512}));
  EXPECT_EQ(shapes["classifier.3.weight"], (Shape{512, 512}));
  EXPECT_EQ(shapes["classifier.6.weight"], (Shape{10, 512}));
}

}  // namespace
}  // namespace ruche
