// The ops behind the Caffe-zoo layers (LRN, softmax over an axis, Concat's block copies, Scale,
// Power): PyTorch references (tests/ops/reference/ref_caffe_layers.py), finite differences, and
// the argument errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::random_tensor;
using testing::reference;

ops::LrnParams lrn_params(ops::LrnRegion region, int size) {
  ops::LrnParams p;
  p.region = region;
  p.size = size;
  if (region == ops::LrnRegion::across_channels) {
    p.alpha = 0.3f;
    p.beta = 0.75f;
    p.k = 2.0f;
  } else {
    p.alpha = 0.5f;
    p.beta = 0.75f;
    p.k = 1.0f;
  }
  return p;
}

TEST(Lrn, MatchesTorch) {
  struct Case {
    const char* name;
    ops::LrnRegion region;
    int size;
  };
  for (const Case& c : {Case{"lrn_across_3", ops::LrnRegion::across_channels, 3},
                        Case{"lrn_across_5", ops::LrnRegion::across_channels, 5},
                        Case{"lrn_across_4", ops::LrnRegion::across_channels, 4},
                        Case{"lrn_within_3", ops::LrnRegion::within_channel, 3},
                        Case{"lrn_within_2", ops::LrnRegion::within_channel, 2}}) {
    SCOPED_TRACE(c.name);
    const ops::LrnParams p = lrn_params(c.region, c.size);
    const Tensor x = reference(c.name, "x0");
    Tensor y = Tensor::empty(x.shape()), scale = Tensor::empty(x.shape());
    ops::lrn_forward(x, y, scale, p);
    EXPECT_TENSORS_CLOSE(y, reference(c.name, "y"), 1e-5);
    Tensor dx = Tensor::empty(x.shape());
    ops::lrn_backward(x, y, scale, reference(c.name, "dy"), dx, p);
    EXPECT_TENSORS_CLOSE(dx, reference(c.name, "dx0"), 1e-5);
  }
}

TEST(Lrn, GradientMatchesFiniteDifferences) {
  const Shape shape{2, 6, 4, 3};
  for (ops::LrnRegion region : {ops::LrnRegion::across_channels, ops::LrnRegion::within_channel}) {
    const ops::LrnParams p = lrn_params(region, 3);
    auto forward = [&](std::vector<Tensor>& in) {
      Tensor y = Tensor::empty(shape), scale = Tensor::empty(shape);
      ops::lrn_forward(in[0], y, scale, p);
      return y;
    };
    auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
      Tensor y = Tensor::empty(shape), scale = Tensor::empty(shape), dx = Tensor::empty(shape);
      ops::lrn_forward(in[0], y, scale, p);
      ops::lrn_backward(in[0], y, scale, dy, dx, p);
      return std::vector<Tensor>{dx};
    };
    testing::expect_gradients_match({random_tensor(shape, 3, -2.0f, 2.0f)}, forward, backward, {0});
  }
}

TEST(SoftmaxAxis, MatchesTorchAndTheRowOp) {
  for (auto [name, axis] : {std::pair{"softmax_axis1_4d", 1}, std::pair{"softmax_axis2_3d", 2}}) {
    SCOPED_TRACE(name);
    const Tensor x = reference(name, "x0");
    Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape());
    ops::softmax_axis_forward(x, y, axis);
    EXPECT_TENSORS_CLOSE(y, reference(name, "y"), 1e-5);
    ops::softmax_axis_backward(y, reference(name, "dy"), dx, axis);
    EXPECT_TENSORS_CLOSE(dx, reference(name, "dx0"), 1e-5);
  }
  // On [N, C] over axis 1 it is softmax_forward, bit for bit.
  const Tensor x = random_tensor({5, 9}, 4, -5.0f, 5.0f);
  Tensor a = Tensor::empty(x.shape()), b = Tensor::empty(x.shape());
  ops::softmax_forward(x, a);
  ops::softmax_axis_forward(x, b, 1);
  EXPECT_EQ(a.to_vector(), b.to_vector());
}

TEST(SoftmaxAxis, GradientMatchesFiniteDifferences) {
  const Shape shape{2, 4, 3};
  for (int axis : {0, 1, 2}) {
    auto forward = [&](std::vector<Tensor>& in) {
      Tensor y = Tensor::empty(shape);
      ops::softmax_axis_forward(in[0], y, axis);
      return y;
    };
    auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
      Tensor y = Tensor::empty(shape), dx = Tensor::empty(shape);
      ops::softmax_axis_forward(in[0], y, axis);
      ops::softmax_axis_backward(y, dy, dx, axis);
      return std::vector<Tensor>{dx};
    };
    testing::expect_gradients_match({random_tensor(shape, 5, -2.0f, 2.0f)}, forward, backward, {0});
  }
}

TEST(ChannelScale, MatchesTorch) {
  {
    const char* name = "scale_channels";
    const Tensor x = reference(name, "x0"), w = reference(name, "x1"), b = reference(name, "x2");
    Tensor y = Tensor::empty(x.shape());
    ops::channel_scale_forward(x, w, b, y, 1);
    EXPECT_TENSORS_CLOSE(y, reference(name, "y"), 1e-6);
    Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()),
           db = Tensor::empty(b.shape());
    ops::channel_scale_backward(x, w, reference(name, "dy"), dx, dw, db, 1);
    EXPECT_TENSORS_CLOSE(dx, reference(name, "dx0"), 1e-6);
    EXPECT_TENSORS_CLOSE(dw, reference(name, "dx1"), 1e-6);
    EXPECT_TENSORS_CLOSE(db, reference(name, "dx2"), 1e-6);
  }
  {
    const char* name = "scale_axis0_2d";  // a second bottom [N, C] scaling [N, C, H, W]
    const Tensor x = reference(name, "x0"), w = reference(name, "x1");
    Tensor y = Tensor::empty(x.shape());
    ops::channel_scale_forward(x, w, Tensor(), y, 0);
    EXPECT_TENSORS_CLOSE(y, reference(name, "y"), 1e-6);
    Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape()), none;
    ops::channel_scale_backward(x, w, reference(name, "dy"), dx, dw, none, 0);
    EXPECT_TENSORS_CLOSE(dx, reference(name, "dx0"), 1e-6);
    EXPECT_TENSORS_CLOSE(dw, reference(name, "dx1"), 1e-6);
  }
}

TEST(Power, MatchesTorchAndFiniteDifferences) {
  ops::PowerParams p;
  p.power = 2.5f;
  p.scale = 1.5f;
  p.shift = 0.5f;
  const Tensor x = reference("power", "x0");
  Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape());
  ops::power_forward(x, y, p);
  EXPECT_TENSORS_CLOSE(y, reference("power", "y"), 1e-6);
  ops::power_backward(x, reference("power", "dy"), dx, p);
  EXPECT_TENSORS_CLOSE(dx, reference("power", "dx0"), 1e-6);
  const Shape shape{3, 4};
  auto forward = [&](std::vector<Tensor>& in) {
    Tensor out = Tensor::empty(shape);
    ops::power_forward(in[0], out, p);
    return out;
  };
  auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
    Tensor d = Tensor::empty(shape);
    ops::power_backward(in[0], dy, d, p);
    return std::vector<Tensor>{d};
  };
  testing::expect_gradients_match({random_tensor(shape, 6, 0.5f, 2.0f)}, forward, backward, {0});
}

TEST(AxisCopy, ConcatenatesAsTorchCat) {
  for (auto [name, axis, parts] :
       {std::tuple{"concat_axis1", 1, 3}, std::tuple{"concat_axis2", 2, 2}}) {
    SCOPED_TRACE(name);
    const Tensor y_ref = reference(name, "y");
    Tensor y = Tensor::zeros(y_ref.shape());
    std::int64_t offset = 0;
    for (int i = 0; i < parts; ++i) {
      const std::string index = std::to_string(i);
      std::string x_name = "x", dx_name = "dx";
      x_name += index;
      dx_name += index;
      const Tensor part = reference(name, x_name);
      ops::copy_into_axis(part, y, axis, offset);
      Tensor dpart = Tensor::empty(part.shape());
      ops::copy_from_axis(reference(name, "dy"), dpart, axis, offset);
      EXPECT_EQ(dpart.to_vector(), reference(name, dx_name).to_vector());
      offset += part.size(axis);
    }
    EXPECT_EQ(y.to_vector(), y_ref.to_vector());
  }
}

TEST(CaffeLayerOps, ClearErrors) {
  Tensor whole = Tensor::zeros({2, 5, 3}), part = Tensor::zeros({2, 2, 4});
  EXPECT_THROW(ops::copy_into_axis(part, whole, 1, 0), Error);
  Tensor fits = Tensor::zeros({2, 2, 3});
  EXPECT_THROW(ops::copy_into_axis(fits, whole, 1, 4), Error);
  Tensor x = Tensor::zeros({2, 3, 4}), y = Tensor::zeros({2, 3, 4}), s = Tensor::zeros({3});
  EXPECT_THROW(ops::lrn_forward(x, y, s, ops::LrnParams{}), Error);  // not 4-d
  EXPECT_THROW(ops::channel_scale_forward(x, Tensor::zeros({4}), Tensor(), y, 1), Error);
  EXPECT_THROW(ops::softmax_axis_forward(x, y, 3), Error);
}

}  // namespace
}  // namespace ruche
