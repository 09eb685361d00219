// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void activation_forward(Activation kind, float alpha, const Tensor& x, Tensor& y) {
  RUCHE_FAIL() << "activation_forward: not implemented yet";
}

void activation_backward(Activation kind, float alpha, const Tensor& y, const Tensor& dy, Tensor& dx) {
  RUCHE_FAIL() << "activation_backward: not implemented yet";
}

void heaviside_forward(const Tensor& x, Tensor& y, float value_at_zero) {
  RUCHE_FAIL() << "heaviside_forward: not implemented yet";
}

}  // namespace ruche::ops::cpu
