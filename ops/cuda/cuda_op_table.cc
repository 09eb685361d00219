// The CUDA op table: the ops of ops/cuda/cuda_ops.h; an empty slot is a clear error from ops.cc.
#include "ops/cuda/cuda_ops.h"
#include "ops/op_table.h"

namespace ruche::ops {

const OpTable* cuda_op_table() {
  static const OpTable table = [] {
    OpTable t;
    t.activation_forward = &gpu::activation_forward;
    t.activation_backward = &gpu::activation_backward;
    t.heaviside_forward = &gpu::heaviside_forward;
    t.add = &gpu::add;
    t.axpy = &gpu::axpy;
    t.scale = &gpu::scale;
    t.dropout_forward = &gpu::dropout_forward;
    t.dropout_backward = &gpu::dropout_backward;
    t.softmax_forward = &gpu::softmax_forward;
    t.softmax_backward = &gpu::softmax_backward;
    t.mse_forward = &gpu::mse_forward;
    t.mse_backward = &gpu::mse_backward;
    // convolution and pooling
    t.conv2d_forward = &gpu::conv2d_forward;
    t.conv2d_backward_data = &gpu::conv2d_backward_data;
    t.conv2d_backward_weights = &gpu::conv2d_backward_weights;
    t.max_pool2d_forward = &gpu::max_pool2d_forward;
    t.max_pool2d_backward = &gpu::max_pool2d_backward;
    t.avg_pool2d_forward = &gpu::avg_pool2d_forward;
    t.avg_pool2d_backward = &gpu::avg_pool2d_backward;
    t.global_avg_pool_forward = &gpu::global_avg_pool_forward;
    t.global_avg_pool_backward = &gpu::global_avg_pool_backward;

    // batch norm
    t.batch_norm_forward_training = &gpu::batch_norm_forward_training;
    t.batch_norm_forward_inference = &gpu::batch_norm_forward_inference;
    t.batch_norm_backward = &gpu::batch_norm_backward;
    t.batch_norm_local_stats = &gpu::batch_norm_local_stats;
    t.batch_norm_stats_to_moments = &gpu::batch_norm_stats_to_moments;
    t.batch_norm_backward_reduce = &gpu::batch_norm_backward_reduce;
    t.batch_norm_backward_apply = &gpu::batch_norm_backward_apply;

    // linear, cross-entropy, penalties
    t.linear_forward = &gpu::linear_forward;
    t.linear_backward_data = &gpu::linear_backward_data;
    t.linear_backward_weights = &gpu::linear_backward_weights;
    t.softmax_cross_entropy_forward = &gpu::softmax_cross_entropy_forward;
    t.softmax_cross_entropy_backward = &gpu::softmax_cross_entropy_backward;
    t.l1_penalty_forward = &gpu::l1_penalty_forward;
    t.l1_penalty_backward = &gpu::l1_penalty_backward;
    t.l2_penalty_forward = &gpu::l2_penalty_forward;
    t.l2_penalty_backward = &gpu::l2_penalty_backward;

    // optimizer, casts, non-finite checks
    t.optimizer_update = &gpu::optimizer_update;
    t.sum_squares_finite = &gpu::sum_squares_finite;
    t.cast = &gpu::cast;

    return t;
  }();
  return &table;
}

}  // namespace ruche::ops
