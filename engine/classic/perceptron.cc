#include "engine/classic/perceptron.h"

#include "ops/ops.h"

namespace ruche::classic {

Tensor perceptron_predict(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor z = Tensor::empty({x.size(0), 1});
  Tensor y_hat = Tensor::empty({x.size(0), 1});
  ops::linear_forward(x, weight, bias, z);
  // step(0) = 1: a point on the boundary counts as positive, as in Rosenblatt's rule.
  ops::heaviside_forward(z, y_hat, 1.0f);
  return y_hat;
}

PerceptronResult train_perceptron(const Tensor& x, const Tensor& y, float learning_rate,
                                  int max_epochs) {
  RUCHE_REQUIRE(x.ndim() == 2 && y.ndim() == 2 && y.size(0) == x.size(0) && y.size(1) == 1)
      << "perceptron: expected x [N, in] and y [N, 1], got " << x.str() << " and " << y.str();
  const std::int64_t n = x.size(0);
  PerceptronResult r;
  r.weight = Tensor::zeros({1, x.size(1)});
  r.bias = Tensor::zeros({1});
  const auto targets = y.to_vector();
  std::vector<std::vector<float>> seen;  // weights and bias after each epoch, to detect a cycle

  while (r.epochs < max_epochs && !r.converged && !r.cycled) {
    int mistakes = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const Tensor xi = x.narrow(0, i, 1);
      const float error =
          targets[static_cast<std::size_t>(i)] - perceptron_predict(xi, r.weight, r.bias).item();
      if (error != 0.0f) {
        ++mistakes;
        ops::axpy(learning_rate * error, xi, r.weight);
        r.bias.data<float>()[0] += learning_rate * error;
      }
    }
    ++r.epochs;
    r.converged = mistakes == 0;
    std::vector<float> state = r.weight.to_vector();
    state.push_back(r.bias.item());
    for (const auto& earlier : seen) r.cycled = r.cycled || (!r.converged && earlier == state);
    seen.push_back(std::move(state));
  }
  r.predictions = perceptron_predict(x, r.weight, r.bias).to_vector();
  return r;
}

}  // namespace ruche::classic
