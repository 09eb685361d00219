// The built-in ResNets and VGG-16 name and shape their parameters exactly as torchvision's
// state_dict (tests/ops/reference/ref_models.py): the generators on their own, and, once every
// layer type they use is registered, through the layers' own param_decls().
#include <gtest/gtest.h>

#include <sstream>

#include "engine/models/models.h"
#include "tests/models/state_dict.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::all_layers_registered;
using testing::expected_state_dict;
using testing::layer_state_dict;
using testing::lines_of;

struct Case {
  const char* reference;  // case name in ref_models.py
  const char* model;
  Shape sample;
  int num_classes;
};

const Case kCases[] = {
    {"models_resnet18_224", "resnet18", {3, 224, 224}, 1000},
    {"models_resnet18_32", "resnet18", {3, 32, 32}, 10},
    {"models_resnet50_224", "resnet50", {3, 224, 224}, 1000},
    {"models_resnet50_32", "resnet50", {3, 32, 32}, 10},
    {"models_vgg16_224", "vgg16", {3, 224, 224}, 1000},
};

std::vector<std::string> torchvision_state_dict(const std::string& reference_case) {
  const Tensor text = testing::reference(reference_case, "state_dict");
  const auto bytes = text.to_vector<std::uint8_t>();
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(TorchvisionNames, GeneratorsMatchTorchvisionStateDicts) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.reference);
    const auto net = builtin_model(c.model, {c.sample, c.num_classes});
    const auto expected = torchvision_state_dict(c.reference);
    ASSERT_GT(expected.size(), 30u);
    EXPECT_EQ(lines_of(expected_state_dict(net, c.num_classes)), expected);
    // num_output 0 takes the classes from the dataset: same state_dict.
    const auto open = builtin_model(c.model, {c.sample, 0});
    EXPECT_EQ(lines_of(expected_state_dict(open, c.num_classes)), expected);
  }
}

TEST(TorchvisionNames, LayersDeclareTorchvisionStateDicts) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.reference);
    const auto net = builtin_model(c.model, {c.sample, 0});
    if (!all_layers_registered(net)) {
      GTEST_SKIP() << "not every layer type of " << c.model << " is registered yet";
    }
    EXPECT_EQ(lines_of(layer_state_dict(net, c.num_classes)), torchvision_state_dict(c.reference));
  }
}

}  // namespace
}  // namespace ruche
