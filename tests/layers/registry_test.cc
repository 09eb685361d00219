// The layer registry: every documented type is known, and an unknown one lists them.
#include <gtest/gtest.h>

#include "engine/layers/layer.h"
#include "tests/layers/layer_harness.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::layer_param;

TEST(Registry, KnowsEveryLayerTypeSorted) {
  const std::vector<std::string> expected = {"BatchNorm",     "Concat",  "Convolution",
                                             "Deconvolution", "Dropout", "Eltwise",
                                             "EuclideanLoss", "Flatten", "InnerProduct",
                                             "Input",         "L1Loss",  "LRN",
                                             "Pooling",       "Power",   "ReLU",
                                             "Scale",         "Sigmoid", "SigmoidCrossEntropyLoss",
                                             "SmoothL1Loss",  "Softmax", "SoftmaxWithLoss",
                                             "TanH",          "Upsample"};
  EXPECT_EQ(known_layer_types(), expected);
}

TEST(Registry, UnknownTypeListsTheKnownOnes) {
  const std::string e = error_of([] { create_layer(layer_param("name: 'c' type: 'Conv'")); });
  EXPECT_NE(e.find("unknown layer type 'Conv'"), std::string::npos) << e;
  EXPECT_NE(e.find("known: BatchNorm, Concat, Convolution, Deconvolution, Dropout"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("TanH"), std::string::npos) << e;
}

TEST(Registry, CreatesEachTypeWithItsName) {
  const char* configs[] = {
      "name: 'a' type: 'Input' top: 'data'",
      "name: 'a' type: 'Convolution' convolution_param { num_output: 2 kernel_size: 3 }",
      "name: 'a' type: 'BatchNorm'",
      "name: 'a' type: 'ReLU'",
      "name: 'a' type: 'Sigmoid'",
      "name: 'a' type: 'TanH'",
      "name: 'a' type: 'Pooling' pooling_param { kernel_size: 2 }",
      "name: 'a' type: 'InnerProduct'",
      "name: 'a' type: 'Dropout'",
      "name: 'a' type: 'Eltwise'",
      "name: 'a' type: 'Flatten'",
      "name: 'a' type: 'Softmax'",
      "name: 'a' type: 'SoftmaxWithLoss'",
      "name: 'a' type: 'EuclideanLoss'",
      "name: 'a' type: 'Deconvolution' convolution_param { num_output: 2 kernel_size: 3 }",
      "name: 'a' type: 'Upsample' upsample_param { scale_factor: 2 }",
  };
  for (const char* c : configs) {
    SCOPED_TRACE(c);
    const auto layer = create_layer(layer_param(c));
    ASSERT_NE(layer, nullptr);
    EXPECT_EQ(layer->name(), "a");
  }
}

}  // namespace
}  // namespace ruche
