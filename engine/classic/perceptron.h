// Rosenblatt's perceptron: y_hat = step(w.x + b), trained one sample at a time by the perceptron
// learning rule w += lr (y - y_hat) x, b += lr (y - y_hat).
#pragma once

#include <vector>

#include "engine/tensor/tensor.h"

namespace ruche::classic {

struct PerceptronResult {
  Tensor weight;           // [1, in]
  Tensor bias;             // [1]
  int epochs = 0;          // epochs run
  bool converged = false;  // an epoch made no mistake: every sample is classified right
  // The weights after an epoch equalled those after an earlier epoch while mistakes remained.
  // The rule is deterministic, so it will repeat that cycle forever: it can never converge,
  // which for a perceptron means the data is not linearly separable.
  bool cycled = false;
  std::vector<float> predictions;  // y_hat of each sample with the final weights
};

// x: [N, in] f32, y: [N, 1] of 0/1. Weights start at zero, as in the textbook.
PerceptronResult train_perceptron(const Tensor& x, const Tensor& y, float learning_rate,
                                  int max_epochs);

// y_hat = step(x w^T + b) for every row of x: [N, 1].
Tensor perceptron_predict(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace ruche::classic
