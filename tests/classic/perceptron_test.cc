#include "engine/classic/perceptron.h"

#include <gtest/gtest.h>

#include "engine/classic/truth_table.h"

namespace ruche::classic {
namespace {

TEST(Perceptron, LearnsAnd) {
  const Tensor x = truth_table_inputs();
  const auto r = train_perceptron(x, truth_table_targets(Gate::AND), 1.0f, 100);
  EXPECT_TRUE(r.converged);
  EXPECT_EQ(r.predictions, (std::vector<float>{0, 0, 0, 1}));
}

TEST(Perceptron, LearnsOr) {
  const Tensor x = truth_table_inputs();
  const auto r = train_perceptron(x, truth_table_targets(Gate::OR), 1.0f, 100);
  EXPECT_TRUE(r.converged);
  EXPECT_EQ(r.predictions, (std::vector<float>{0, 1, 1, 1}));
}

TEST(Perceptron, CannotSeparateXor) {
  // With binary inputs and lr 1 every weight stays an integer, so a repeated epoch-end state is
  // an exact cycle of a deterministic map: proof that the rule never converges on XOR.
  const Tensor x = truth_table_inputs();
  for (float lr : {1.0f, 0.5f, 0.25f}) {
    const auto r = train_perceptron(x, truth_table_targets(Gate::XOR), lr, 1000);
    EXPECT_FALSE(r.converged) << "lr " << lr;
    EXPECT_TRUE(r.cycled) << "lr " << lr;
    EXPECT_NE(r.predictions, (std::vector<float>{0, 1, 1, 0})) << "lr " << lr;
  }
}

TEST(Perceptron, NoLinearSeparatorOfXorExists) {
  // The textbook argument, checked over a grid of separators: w1, w2, b would need
  // b < 0, w1 + b >= 0, w2 + b >= 0 and w1 + w2 + b < 0, yet the middle two sum to
  // w1 + w2 + 2b >= 0, so w1 + w2 + b >= -b > 0. No grid point may classify all four.
  const Tensor x = truth_table_inputs();
  const Tensor y = truth_table_targets(Gate::XOR);
  const auto targets = y.to_vector();
  for (int i = -8; i <= 8; ++i) {
    for (int j = -8; j <= 8; ++j) {
      for (int k = -8; k <= 8; ++k) {
        const Tensor w = Tensor::from_vector({i * 0.5f, j * 0.5f}, {1, 2});
        const Tensor b = Tensor::from_vector({k * 0.5f}, {1});
        ASSERT_NE(perceptron_predict(x, w, b).to_vector(), targets);
      }
    }
  }
}

TEST(Perceptron, RejectsBadShapes) {
  EXPECT_THROW(train_perceptron(Tensor::zeros({4, 2}), Tensor::zeros({3, 1}), 1.0f, 10), Error);
}

}  // namespace
}  // namespace ruche::classic
