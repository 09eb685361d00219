// Softmax over dim 1: PyTorch references (including logits near 100, which overflow a naive exp),
// finite-difference gradients, rows summing to one, in-place forward, errors.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

TEST(Softmax, MatchesTorch) {
  for (const char* name : {"softmax_small", "softmax_large"}) {
    SCOPED_TRACE(name);
    const Tensor x = reference(name, "x");
    Tensor y = Tensor::empty(x.shape());
    ops::softmax_forward(x, y);
    EXPECT_TENSORS_CLOSE(y, reference(name, "y"), 1e-5);
    Tensor dx = Tensor::empty(x.shape());
    ops::softmax_backward(y, reference(name, "dy"), dx);
    EXPECT_TENSORS_CLOSE(dx, reference(name, "dx"), 1e-5);
  }
}

TEST(Softmax, GradientMatchesFiniteDifferences) {
  const Shape shape{5, 9};
  auto forward = [&](std::vector<Tensor>& in) {
    Tensor y = Tensor::empty(shape);
    ops::softmax_forward(in[0], y);
    return y;
  };
  auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
    Tensor y = Tensor::empty(shape), dx = Tensor::empty(shape);
    ops::softmax_forward(in[0], y);
    ops::softmax_backward(y, dy, dx);
    return std::vector<Tensor>{dx};
  };
  testing::expect_gradients_match({testing::random_tensor(shape, 6, -2.0f, 2.0f)}, forward,
                                  backward, {0});
}

TEST(Softmax, RowsSumToOneAndInPlaceWorks) {
  const Shape shape{64, 1000};  // large enough for the threaded path
  Tensor x = testing::random_tensor(shape, 7, -30.0f, 30.0f);
  Tensor y = Tensor::empty(shape);
  ops::softmax_forward(x, y);
  const auto v = y.to_vector();
  for (std::int64_t n = 0; n < shape[0]; ++n) {
    double sum = 0;
    for (std::int64_t c = 0; c < shape[1]; ++c) sum += v[static_cast<std::size_t>(n * 1000 + c)];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  ops::softmax_forward(x, x);
  EXPECT_EQ(x.to_vector(), v);
}

TEST(Softmax, ClearErrors) {
  Tensor x = Tensor::zeros({2, 3, 4}), y = Tensor::zeros({2, 3, 4});
  EXPECT_THROW(ops::softmax_forward(x, y), Error);
  Tensor x2 = Tensor::zeros({2, 3}), y2 = Tensor::zeros({2, 4});
  try {
    ops::softmax_forward(x2, y2);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax_forward: output has shape [2, 4]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ruche
