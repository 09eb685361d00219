// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void softmax_cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs, Tensor& loss, const CrossEntropyParams& p) {
  RUCHE_FAIL() << "softmax_cross_entropy_forward: not implemented yet";
}

void softmax_cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits, float dloss, const CrossEntropyParams& p) {
  RUCHE_FAIL() << "softmax_cross_entropy_backward: not implemented yet";
}

void mse_forward(const Tensor& pred, const Tensor& target, Tensor& loss) {
  RUCHE_FAIL() << "mse_forward: not implemented yet";
}

void mse_backward(const Tensor& pred, const Tensor& target, Tensor& dpred, float dloss) {
  RUCHE_FAIL() << "mse_backward: not implemented yet";
}

}  // namespace ruche::ops::cpu
