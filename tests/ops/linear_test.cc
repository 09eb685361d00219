// linear: PyTorch references (batch 1, odd sizes, no bias, wide), finite-difference gradients of
// x, w and b, and errors.
#include <gtest/gtest.h>

#include <string>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::random_tensor;
using testing::reference;

class LinearReference : public ::testing::TestWithParam<std::string> {};

TEST_P(LinearReference, MatchesTorch) {
  const std::string c = GetParam();
  const bool bias = reference(c, "params").to_vector<std::int32_t>()[0] != 0;
  const Tensor x = reference(c, "x"), w = reference(c, "w"), dy = reference(c, "dy");
  const Tensor b = bias ? reference(c, "b") : Tensor();

  Tensor y = Tensor::empty({x.size(0), w.size(0)});
  ops::linear_forward(x, w, b, y);
  EXPECT_TENSORS_CLOSE(y, reference(c, "y"), 1e-5);
  Tensor dx = Tensor::empty(x.shape());
  ops::linear_backward_data(dy, w, dx);
  EXPECT_TENSORS_CLOSE(dx, reference(c, "dx"), 1e-5);
  Tensor dw = Tensor::empty(w.shape());
  Tensor db = bias ? Tensor::empty(b.shape()) : Tensor();
  ops::linear_backward_weights(x, dy, dw, db);
  EXPECT_TENSORS_CLOSE(dw, reference(c, "dw"), 1e-5);
  if (bias) {
    EXPECT_TENSORS_CLOSE(db, reference(c, "db"), 1e-5);
  }

  // A cache hit with other buffers.
  Tensor y2 = Tensor::zeros(y.shape());
  ops::linear_forward(x.clone(), w.clone(), bias ? b.clone() : Tensor(), y2);
  EXPECT_TENSORS_CLOSE(y2, reference(c, "y"), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Torch, LinearReference,
                         ::testing::Values("linear_batch1", "linear_odd", "linear_no_bias",
                                           "linear_wide"));

void check_gradients(std::int64_t n, std::int64_t in, std::int64_t out, bool bias,
                     std::uint32_t seed) {
  SCOPED_TRACE("linear " + std::to_string(n) + "x" + std::to_string(in) + " -> " +
               std::to_string(out) + (bias ? " with bias" : ""));
  std::vector<Tensor> inputs{random_tensor({n, in}, seed), random_tensor({out, in}, seed + 1),
                             bias ? random_tensor({out}, seed + 2) : Tensor()};
  const auto forward = [&](std::vector<Tensor>& t) {
    Tensor y = Tensor::empty({n, out});
    ops::linear_forward(t[0], t[1], t[2], y);
    return y;
  };
  const auto backward = [&](std::vector<Tensor>& t, const Tensor& dy) {
    Tensor dx = Tensor::empty({n, in}), dw = Tensor::empty({out, in});
    Tensor db = bias ? Tensor::empty({out}) : Tensor();
    ops::linear_backward_data(dy, t[1], dx);
    ops::linear_backward_weights(t[0], dy, dw, db);
    return std::vector<Tensor>{dx, dw, db};
  };
  std::vector<int> checked{0, 1};
  if (bias) checked.push_back(2);
  testing::expect_gradients_match(inputs, forward, backward, checked);
}

TEST(Linear, GradientsMatchFiniteDifferences) {
  check_gradients(1, 1, 1, true, 10);
  check_gradients(1, 5, 3, true, 20);
  check_gradients(4, 7, 9, true, 30);
  check_gradients(3, 16, 2, false, 40);
  check_gradients(13, 31, 11, true, 50);
}

TEST(Linear, ShapeMismatchesNameTheOp) {
  const Tensor x = Tensor::zeros({4, 5}), w = Tensor::zeros({3, 5});
  Tensor y = Tensor::zeros({4, 3});
  const std::string bad_in = error_of([&] {
    ops::linear_forward(Tensor::zeros({4, 6}), w, Tensor(), y);
  });
  EXPECT_EQ(bad_in, "linear_forward: x [4, 6] has 6 features but w [3, 5] expects 5");
  Tensor y_bad = Tensor::zeros({4, 4});
  EXPECT_EQ(error_of([&] { ops::linear_forward(x, w, Tensor(), y_bad); }),
            "linear_forward: y must be [4, 3], got [4, 4]");
  EXPECT_EQ(error_of([&] { ops::linear_forward(x, w, Tensor::zeros({4}), y); }),
            "linear_forward: b must be [3], got [4]");
  EXPECT_EQ(error_of([&] {
              ops::linear_forward(Tensor::zeros({4, 5, 1}), w, Tensor(), y);
            }).rfind("linear_forward: x must be [N, in]", 0),
            0u);
  Tensor dx = Tensor::zeros({4, 6});
  EXPECT_EQ(error_of([&] { ops::linear_backward_data(y, w, dx); }),
            "linear_backward_data: dx [4, 6] has 6 features but w [3, 5] expects 5");
  Tensor dw = Tensor::zeros({3, 5}), db = Tensor::zeros({2});
  EXPECT_EQ(error_of([&] { ops::linear_backward_weights(x, y, dw, db); }),
            "linear_backward_weights: db must be [3], got [2]");
}

}  // namespace
}  // namespace ruche
