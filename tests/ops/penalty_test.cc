// L1 and L2 weight penalties: PyTorch references (loss and autograd gradient), the backward adds
// to dw, finite-difference gradients, errors.
#include <gtest/gtest.h>

#include <span>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

using Forward = void (*)(const Tensor&, float, Tensor&);
using Backward = void (*)(const Tensor&, float, Tensor&);

struct Case {
  const char* name;
  Forward forward;
  Backward backward;
};

const Case kCases[] = {{"penalty_l1", ops::l1_penalty_forward, ops::l1_penalty_backward},
                       {"penalty_l2", ops::l2_penalty_forward, ops::l2_penalty_backward}};

TEST(Penalty, MatchesTorchAndBackwardAdds) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const Tensor w = reference(c.name, "w");
    const float coeff = reference(c.name, "coeff").item();
    Tensor loss = Tensor::empty({1});
    c.forward(w, coeff, loss);
    EXPECT_TENSORS_CLOSE(loss, reference(c.name, "loss"), 1e-5);
    // The gradient buffer already holds the data term: the penalty adds to it.
    Tensor dw = Tensor::empty(w.shape());
    dw.fill(1.0f);
    c.backward(w, coeff, dw);
    Tensor expected = reference(c.name, "dw").clone();
    for (float& v : std::span(expected.data<float>(), expected.numel())) v += 1.0f;
    EXPECT_TENSORS_CLOSE(dw, expected, 1e-6);
  }
}

TEST(Penalty, GradientMatchesFiniteDifferences) {
  const Shape shape{6, 9};
  // L1 has a kink at 0: keep every weight at least 0.1 away from it.
  Tensor w = testing::random_tensor(shape, 1, -1.0f, 1.0f);
  for (float& v : std::span(w.data<float>(), w.numel())) v += v >= 0 ? 0.1f : -0.1f;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    auto forward = [&](std::vector<Tensor>& in) {
      Tensor loss = Tensor::empty({1});
      c.forward(in[0], 0.7f, loss);
      return loss;
    };
    auto backward = [&](std::vector<Tensor>& in, const Tensor& dloss) {
      Tensor dw = Tensor::zeros(shape);
      c.backward(in[0], 0.7f * dloss.item(), dw);
      return std::vector<Tensor>{dw};
    };
    testing::expect_gradients_match({w.clone()}, forward, backward, {0});
  }
}

TEST(Penalty, ClearErrors) {
  const Tensor w = Tensor::zeros({3, 2});
  Tensor loss2 = Tensor::empty({2});
  EXPECT_THROW(ops::l1_penalty_forward(w, 0.1f, loss2), Error);
  Tensor dw = Tensor::zeros({2, 3});
  try {
    ops::l2_penalty_backward(w, 0.1f, dw);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("l2_penalty_backward: dw has shape [2, 3] but w has "
                                         "[3, 2]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ruche
