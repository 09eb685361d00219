// Caffe's fillers through the import: a Caffe net's xavier, msra, gaussian, uniform and constant
// fillers (and one with no type, Caffe's constant 0) mapped by caffe_net_from_text and drawn by
// ruche's initialisation must have Caffe's distributions. The bounds are tight enough that
// torch.nn's default, U(+-1/sqrt(fan_in)), fails every one of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/graph/net.h"
#include "engine/interop/caffe_import.h"

namespace ruche {
namespace {

const char* kNet = R"(name: "fillers"
input: "data"
input_shape { dim: 1 dim: 16 dim: 8 dim: 8 }
layer { name: "xavier" type: "Convolution" bottom: "data" top: "a"
  convolution_param { num_output: 64 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "msra" type: "Convolution" bottom: "data" top: "b"
  convolution_param { num_output: 32 kernel_size: 3
    weight_filler { type: "msra" variance_norm: FAN_OUT }
    bias_filler { type: "gaussian" std: 2 } } }
layer { name: "average" type: "InnerProduct" bottom: "a" top: "c"
  inner_product_param { num_output: 50 weight_filler { type: "xavier" variance_norm: AVERAGE }
    bias_filler { type: "uniform" min: -0.2 max: 0.3 } } }
layer { name: "fixed" type: "InnerProduct" bottom: "b" top: "d"
  inner_product_param { num_output: 10 weight_filler { type: "constant" value: 0.25 }
    bias_filler { } } }
layer { name: "none" type: "InnerProduct" bottom: "d" top: "e"
  inner_product_param { num_output: 3 } }
)";

struct Moments {
  double mean = 0, var = 0, max_abs = 0, min = 0, max = 0;
};

Moments moments(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  Moments m;
  for (float x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (float x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size());
  for (float x : v) m.max_abs = std::max(m.max_abs, static_cast<double>(std::fabs(x)));
  m.min = *std::min_element(v.begin(), v.end());
  m.max = *std::max_element(v.begin(), v.end());
  return m;
}

TEST(CaffeFillers, DistributionsAreCaffes) {
  std::vector<std::string> report;
  const proto::NetParameter param = caffe_net_from_text(kNet, "fillers.prototxt", &report);
  auto net = Net::build(param, NetOptions{});
  net->init_params(20);

  // xavier, FAN_IN: U(+-sqrt(3 / 144)) over 64 x 16 x 3 x 3 weights (torch.nn's bound: 1/12).
  const double xb = std::sqrt(3.0 / 144.0);
  const Moments x = moments(net->state_tensor("xavier.weight"));
  EXPECT_LE(x.max_abs, xb * (1 + 1e-6));
  EXPECT_GE(x.max_abs, 0.99 * xb);
  EXPECT_NEAR(x.var, xb * xb / 3, 0.05 * xb * xb / 3);
  EXPECT_EQ(moments(net->state_tensor("xavier.bias")).max_abs, 0.0);  // Caffe's default: constant 0

  // msra, FAN_OUT: N(0, sqrt(2 / (32 x 3 x 3))); gaussian bias: N(0, 2).
  const double ms = std::sqrt(2.0 / 288.0);
  const Moments m = moments(net->state_tensor("msra.weight"));
  EXPECT_NEAR(std::sqrt(m.var), ms, 0.05 * ms);
  EXPECT_NEAR(m.mean, 0.0, 4 * ms / std::sqrt(4608.0));
  EXPECT_GT(m.max_abs, 3 * ms);  // a normal's tail, which no uniform of that variance has
  EXPECT_GT(std::sqrt(moments(net->state_tensor("msra.bias")).var), 1.0);

  // xavier, AVERAGE over a [50, 64 x 6 x 6] weight: n = (2304 + 50) / 2.
  const double ab = std::sqrt(3.0 / ((2304.0 + 50.0) / 2.0));
  const Moments a = moments(net->state_tensor("average.weight"));
  EXPECT_LE(a.max_abs, ab * (1 + 1e-6));
  EXPECT_GE(a.max_abs, 0.99 * ab);
  EXPECT_NEAR(a.var, ab * ab / 3, 0.05 * ab * ab / 3);
  const Moments u = moments(net->state_tensor("average.bias"));
  EXPECT_GE(u.min, -0.2);
  EXPECT_LE(u.max, 0.3);
  EXPECT_LT(u.min, -0.1);
  EXPECT_GT(u.max, 0.2);

  // constant 0.25; a filler block with no type and a layer with no filler: constant 0.
  const Moments c = moments(net->state_tensor("fixed.weight"));
  EXPECT_EQ(c.min, 0.25);
  EXPECT_EQ(c.max, 0.25);
  EXPECT_EQ(moments(net->state_tensor("fixed.bias")).max_abs, 0.0);
  EXPECT_EQ(moments(net->state_tensor("none.weight")).max_abs, 0.0);
  EXPECT_EQ(moments(net->state_tensor("none.bias")).max_abs, 0.0);
}

}  // namespace
}  // namespace ruche
