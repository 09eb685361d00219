// A two-layer sigmoid network (in -> hidden -> 1) trained with mean squared error and plain
// full-batch gradient descent: the network that learns XOR where a perceptron cannot.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor/tensor.h"

namespace ruche::classic {

struct MlpResult {
  Tensor w1, b1, w2, b2;  // [hidden, in], [hidden], [1, hidden], [1]
  int epochs = 0;
  float final_loss = 0.0f;
  std::vector<float> outputs;  // the network's output for each sample after training
};

// x: [N, in], y: [N, 1]. Weights start as torch.nn.Linear's (uniform in +-1/sqrt(fan_in)),
// drawn from the counter-based generator keyed by `seed`.
MlpResult train_mlp(const Tensor& x, const Tensor& y, int hidden, float learning_rate,
                    int max_epochs, std::uint64_t seed);

}  // namespace ruche::classic
