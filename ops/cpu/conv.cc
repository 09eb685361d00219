// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dParams& p) {
  RUCHE_FAIL() << "conv2d_forward: not implemented yet";
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dParams& p) {
  RUCHE_FAIL() << "conv2d_backward_data: not implemented yet";
}

void conv2d_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, const Conv2dParams& p) {
  RUCHE_FAIL() << "conv2d_backward_weights: not implemented yet";
}

}  // namespace ruche::ops::cpu
