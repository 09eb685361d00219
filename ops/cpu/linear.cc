// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  RUCHE_FAIL() << "linear_forward: not implemented yet";
}

void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) {
  RUCHE_FAIL() << "linear_backward_data: not implemented yet";
}

void linear_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) {
  RUCHE_FAIL() << "linear_backward_weights: not implemented yet";
}

}  // namespace ruche::ops::cpu
