#include "engine/classic/mlp.h"

#include <gtest/gtest.h>

#include "engine/classic/truth_table.h"

namespace ruche::classic {
namespace {

TEST(Mlp, LearnsXor) {
  const Tensor x = truth_table_inputs();
  const Tensor y = truth_table_targets(Gate::XOR);
  // The settings of examples/xor/xor.prototxt.
  const auto r = train_mlp(x, y, 2, 2.0f, 5000, 1);
  ASSERT_EQ(r.outputs.size(), 4u);
  EXPECT_LT(r.outputs[0], 0.5f);
  EXPECT_GT(r.outputs[1], 0.5f);
  EXPECT_GT(r.outputs[2], 0.5f);
  EXPECT_LT(r.outputs[3], 0.5f);
  EXPECT_LT(r.final_loss, 0.05f);
}

TEST(Mlp, LossFallsFromTheStart) {
  const Tensor x = truth_table_inputs();
  const Tensor y = truth_table_targets(Gate::XOR);
  const auto start = train_mlp(x, y, 2, 2.0f, 0, 1);
  const auto later = train_mlp(x, y, 2, 2.0f, 500, 1);
  EXPECT_LT(later.final_loss, start.final_loss);
}

TEST(Mlp, SameSeedSameNetwork) {
  const Tensor x = truth_table_inputs();
  const Tensor y = truth_table_targets(Gate::XOR);
  EXPECT_EQ(train_mlp(x, y, 2, 2.0f, 50, 7).outputs, train_mlp(x, y, 2, 2.0f, 50, 7).outputs);
  EXPECT_NE(train_mlp(x, y, 2, 2.0f, 50, 7).outputs, train_mlp(x, y, 2, 2.0f, 50, 8).outputs);
}

}  // namespace
}  // namespace ruche::classic
