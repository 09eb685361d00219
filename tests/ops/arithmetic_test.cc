// add, axpy, scale: PyTorch references, aliasing, errors. (No backward: the layers pass
// gradients through these directly.)
#include <gtest/gtest.h>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

TEST(Arithmetic, MatchesTorch) {
  const Tensor a = reference("arith", "a"), b = reference("arith", "b");
  const float alpha = reference("arith", "alpha").item();
  Tensor y = Tensor::empty(a.shape());
  ops::add(a, b, y);
  EXPECT_TENSORS_CLOSE(y, reference("arith", "add"), 1e-6);
  Tensor acc = b.clone();
  ops::axpy(alpha, a, acc);
  EXPECT_TENSORS_CLOSE(acc, reference("arith", "axpy"), 1e-6);
  Tensor scaled = a.clone();
  ops::scale(alpha, scaled);
  EXPECT_TENSORS_CLOSE(scaled, reference("arith", "scale"), 1e-6);
}

TEST(Arithmetic, OutputMayAliasAnInput) {
  const Shape shape{100, 1000};  // large enough for the threaded path
  const Tensor a = testing::random_tensor(shape, 1), b = testing::random_tensor(shape, 2);
  Tensor expected = Tensor::empty(shape);
  ops::add(a, b, expected);
  Tensor joined = a.clone();
  ops::add(joined, b, joined);
  EXPECT_EQ(joined.to_vector(), expected.to_vector());
  Tensor twice = a.clone();
  ops::axpy(1.0f, twice, twice);
  Tensor doubled = a.clone();
  ops::scale(2.0f, doubled);
  EXPECT_EQ(twice.to_vector(), doubled.to_vector());
}

TEST(Arithmetic, ClearErrors) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2}), y = Tensor::zeros({2, 3});
  try {
    ops::add(a, b, y);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: b has shape [3, 2] but a has [2, 3]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ops::axpy(1.0f, a, b), Error);
  Tensor i = Tensor::zeros({2}, DType::i32);
  EXPECT_THROW(ops::scale(2.0f, i), Error);
  Tensor strided = Tensor::zeros({3, 2}).transpose(0, 1);
  EXPECT_THROW(ops::scale(2.0f, strided), Error);
}

}  // namespace
}  // namespace ruche
