// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void softmax_forward(const Tensor& x, Tensor& y) {
  RUCHE_FAIL() << "softmax_forward: not implemented yet";
}

void softmax_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  RUCHE_FAIL() << "softmax_backward: not implemented yet";
}

}  // namespace ruche::ops::cpu
