// STUB: to be implemented
#include "ops/cpu/cpu_ops.h"

namespace ruche::ops::cpu {

void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y, Tensor& running_mean, Tensor& running_var, Tensor& save_mean, Tensor& save_var, const BatchNormParams& p) {
  RUCHE_FAIL() << "batch_norm_forward_training: not implemented yet";
}

void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean, const Tensor& running_var, Tensor& y, const BatchNormParams& p) {
  RUCHE_FAIL() << "batch_norm_forward_inference: not implemented yet";
}

void batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean, const Tensor& save_var, Tensor& dx, Tensor& dgamma, Tensor& dbeta, const BatchNormParams& p) {
  RUCHE_FAIL() << "batch_norm_backward: not implemented yet";
}

}  // namespace ruche::ops::cpu
