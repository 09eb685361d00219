// A layer that names no top is a user error naming the layer, not a read past an empty list (a
// loss without a top crashed Net::build: found by the caffe_import fuzz target, issue 22).
#include <gtest/gtest.h>

#include "engine/graph/net.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

void build(const std::string& text) {
  NetSource source;
  const auto param = parse_net(text, "net.prototxt", &source);
  NetOptions options;
  options.batch_size = 2;
  options.sample_shape = {4};
  options.num_classes = 2;
  options.source = source;
  Net::build(param, options);
}

constexpr const char* kInput =
    "layer { name: 'data' type: 'Input' top: 'data' top: 'label' }\n"
    "layer { name: 'fc' type: 'InnerProduct' bottom: 'data' top: 'fc'\n"
    "        inner_product_param { num_output: 2 } }\n";

TEST(NetTops, LossWithoutTopIsAUserError) {
  testing::expect_error(
      [] {
        build(std::string(kInput) +
              "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'fc' bottom: 'label' }\n");
      },
      {"'loss'", "names no top"});
}

TEST(NetTops, InputWithoutTopIsAUserError) {  // Input says so itself
  testing::expect_error([] { build("layer { name: 'data' type: 'Input' }\n"); },
                        {"'data'", "expected 1 or 2 tops"});
}

TEST(NetTops, LossWithTopBuilds) {
  EXPECT_NO_THROW(build(std::string(kInput) +
                        "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'fc' bottom: "
                        "'label' top: 'loss' }\n"));
}

}  // namespace
}  // namespace ruche
