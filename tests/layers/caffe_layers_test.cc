// The Caffe-zoo layers through the Layer interface: LRN, Concat, Scale (a learned scale with bias,
// and a second bottom), Power and Softmax over an axis, each against finite differences; the
// shapes they derive and their errors.
#include <gtest/gtest.h>

#include "tests/layers/layer_harness.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::bind_layer;
using testing::expect_layer_gradients;
using testing::random_tensor;

TEST(CaffeLayers, LrnGradients) {
  for (const char* region : {"ACROSS_CHANNELS", "WITHIN_CHANNEL"}) {
    auto b = bind_layer(std::string("name: 'n' type: 'LRN' lrn_param { local_size: 3 alpha: 0.5 "
                                    "beta: 0.75 k: 1.5 norm_region: ") +
                            region + " }",
                        {random_tensor({2, 5, 4, 3}, 1, -2.0f, 2.0f)});
    expect_layer_gradients(b, {0});
  }
}

TEST(CaffeLayers, ConcatShapesAndGradients) {
  auto b = bind_layer("name: 'c' type: 'Concat'",
                      {random_tensor({2, 1, 3, 2}, 1), random_tensor({2, 4, 3, 2}, 2)});
  EXPECT_EQ(b.io.top[0].shape(), (Shape{2, 5, 3, 2}));
  expect_layer_gradients(b, {0, 1});
  auto last = bind_layer("name: 'c' type: 'Concat' concat_param { axis: -1 }",
                         {random_tensor({2, 3}, 3), random_tensor({2, 2}, 4)});
  EXPECT_EQ(last.io.top[0].shape(), (Shape{2, 5}));
  testing::expect_error(
      [] {
        bind_layer("name: 'c' type: 'Concat'",
                   {random_tensor({2, 1, 3}, 1), random_tensor({2, 4, 2}, 2)});
      },
      {"Concat: bottom 1 [2, 4, 2] does not fit bottom 0 [2, 1, 3]"});
}

TEST(CaffeLayers, ScaleGradients) {
  auto b = bind_layer("name: 's' type: 'Scale' scale_param { bias_term: true }",
                      {random_tensor({3, 4, 2, 2}, 1)});
  ASSERT_EQ(b.decls.size(), 2u);
  EXPECT_EQ(b.decls[0].suffix, "weight");
  EXPECT_EQ(b.decls[0].shape, (Shape{4}));
  EXPECT_EQ(b.decls[0].filler.type(), "constant");
  EXPECT_EQ(b.decls[0].filler.value(), 1.0f);
  expect_layer_gradients(b, {0});
  // The scale from a second bottom [N, C] over axis 0 (squeeze-and-excitation's shape).
  auto two = bind_layer("name: 's' type: 'Scale' scale_param { axis: 0 }",
                        {random_tensor({3, 4, 2, 2}, 2), random_tensor({3, 4}, 3)});
  EXPECT_TRUE(two.decls.empty());
  expect_layer_gradients(two, {0, 1});
}

TEST(CaffeLayers, PowerAndSoftmaxAxisGradients) {
  auto p = bind_layer("name: 'p' type: 'Power' power_param { power: 3 scale: 0.5 shift: 1 }",
                      {random_tensor({3, 5}, 1)});
  expect_layer_gradients(p, {0});
  auto s = bind_layer("name: 's' type: 'Softmax' softmax_param { axis: 1 }",
                      {random_tensor({2, 4, 3, 2}, 2, -2.0f, 2.0f)});
  expect_layer_gradients(s, {0});
  testing::expect_error(
      [] {
        bind_layer("name: 's' type: 'Softmax' softmax_param { axis: 4 }",
                   {random_tensor({2, 4, 3, 2}, 2)});
      },
      {"Softmax: axis 4 is outside [2, 4, 3, 2]"});
}

}  // namespace
}  // namespace ruche
