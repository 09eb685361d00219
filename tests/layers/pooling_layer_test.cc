// Pooling: shapes (default stride, ceil mode, global), errors, hand-computed forward, gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "tests/layers/layer_harness.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::bind_layer;
using testing::error_of;
using testing::layer_param;
using testing::random_tensor;

Shape top_shape(const std::string& text, const Shape& x) {
  return create_layer(layer_param(text))->reshape({x}, 0)[0];
}

// Distinct values 0.05 apart, shuffled: no ties within a window, so max pooling is differentiable
// at the finite-difference step.
Tensor distinct(const Shape& s) {
  std::vector<float> v(static_cast<std::size_t>(s.numel()));
  std::iota(v.begin(), v.end(), 0.0f);
  std::shuffle(v.begin(), v.end(), std::mt19937(3));
  for (float& x : v) x *= 0.05f;
  return Tensor::from_vector(v, s);
}

TEST(PoolingLayer, Shapes) {
  const Shape x{2, 3, 7, 7};
  EXPECT_EQ(top_shape("name: 'p' type: 'Pooling' pooling_param { kernel_size: 2 }", x),
            (Shape{2, 3, 3, 3}));  // stride defaults to the kernel size
  EXPECT_EQ(
      top_shape("name: 'p' type: 'Pooling' pooling_param { kernel_size: 2 ceil_mode: true }", x),
      (Shape{2, 3, 4, 4}));
  EXPECT_EQ(top_shape("name: 'p' type: 'Pooling' "
                      "pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 }",
                      x),
            (Shape{2, 3, 7, 7}));
  EXPECT_EQ(
      top_shape("name: 'p' type: 'Pooling' pooling_param { pool: AVE global_pooling: true }", x),
      (Shape{2, 3, 1, 1}));
  EXPECT_EQ(top_shape("name: 'p' type: 'Pooling' pooling_param { global_pooling: true }", x),
            (Shape{2, 3, 1, 1}));
}

TEST(PoolingLayer, Errors) {
  EXPECT_NE(error_of([] {
              create_layer(layer_param("name: 'p' type: 'Pooling'"));
            }).find("kernel_size (or kernel_h and kernel_w) is required"),
            std::string::npos);
  EXPECT_EQ(error_of([] {
              top_shape("name: 'p' type: 'Pooling' pooling_param { kernel_size: 2 }", Shape{4, 9});
            }),
            "Pooling: expected a 4-d input [N, C, H, W], got [4, 9]");
  EXPECT_EQ(
      error_of([] {
        top_shape("name: 'p' type: 'Pooling' pooling_param { kernel_size: 5 }", Shape{1, 1, 3, 3});
      }).rfind("Pooling: ", 0),
      0u);
}

TEST(PoolingLayer, ForwardValues) {
  const Tensor x =
      Tensor::from_vector({1, 2, 5, 6, 3, 4, 7, 8, -1, -2, 0, 9, -3, -4, 1, 2}, Shape{1, 1, 4, 4});
  auto max = bind_layer("name: 'p' type: 'Pooling' pooling_param { kernel_size: 2 }", {x});
  max.forward();
  EXPECT_EQ(max.io.top[0].to_vector(), (std::vector<float>{4, 8, -1, 9}));
  auto ave =
      bind_layer("name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 2 }", {x});
  ave.forward();
  EXPECT_EQ(ave.io.top[0].to_vector(), (std::vector<float>{2.5f, 6.5f, -2.5f, 3.0f}));
  auto global =
      bind_layer("name: 'p' type: 'Pooling' pooling_param { pool: AVE global_pooling: true }", {x});
  global.forward();
  EXPECT_FLOAT_EQ(global.io.top[0].to_vector()[0], 38.0f / 16.0f);
  auto gmax = bind_layer("name: 'p' type: 'Pooling' pooling_param { global_pooling: true }", {x});
  gmax.forward();
  EXPECT_FLOAT_EQ(gmax.io.top[0].to_vector()[0], 9.0f);
}

TEST(PoolingLayer, Gradients) {
  const char* configs[] = {
      "name: 'p' type: 'Pooling' pooling_param { kernel_size: 3 stride: 2 pad: 1 }",
      ("name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 "
       "count_include_pad: false ceil_mode: true }"),  // one string: parenthesised
      "name: 'p' type: 'Pooling' pooling_param { pool: AVE global_pooling: true }",
      "name: 'p' type: 'Pooling' pooling_param { global_pooling: true }",
  };
  for (const char* c : configs) {
    SCOPED_TRACE(c);
    auto b = bind_layer(c, {distinct(Shape{2, 2, 5, 5})});
    testing::expect_layer_gradients(b, {0});
  }
}

}  // namespace
}  // namespace ruche
