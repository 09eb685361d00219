// The table behind ops.h: one function pointer per op, one table per device kind. RUCHE_OPS lists
// each op once (name, parameters, call arguments, the tensors whose devices must agree); ops.cc
// turns it into the dispatching functions declared in ops.h and each backend fills a table.
#pragma once

#include "ops/ops.h"

namespace ruche::ops {

// clang-format off
#define RUCHE_OPS(X)                                                                                \
  X(conv2d_forward, (const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,                 \
                     const Conv2dParams& p), (x, w, b, y, p), (x, w, b, y))                         \
  X(conv2d_backward_data, (const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dParams& p),  \
    (dy, w, dx, p), (dy, w, dx))                                                                    \
  X(conv2d_backward_weights, (const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,           \
                              const Conv2dParams& p), (x, dy, dw, db, p), (x, dy, dw, db))          \
  X(deconv2d_forward, (const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,               \
                       const Deconv2dParams& p), (x, w, b, y, p), (x, w, b, y))                     \
  X(deconv2d_backward_data, (const Tensor& dy, const Tensor& w, Tensor& dx,                        \
                             const Deconv2dParams& p), (dy, w, dx, p), (dy, w, dx))                 \
  X(deconv2d_backward_weights, (const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,         \
                                const Deconv2dParams& p), (x, dy, dw, db, p), (x, dy, dw, db))      \
  X(upsample2d_forward, (const Tensor& x, Tensor& y, const UpsampleParams& p), (x, y, p), (x, y))  \
  X(upsample2d_backward, (const Tensor& dy, Tensor& dx, const UpsampleParams& p), (dy, dx, p),     \
    (dy, dx))                                                                                       \
  X(batch_norm_forward_training, (const Tensor& x, const Tensor& gamma, const Tensor& beta,        \
    Tensor& y, Tensor& running_mean, Tensor& running_var, Tensor& save_mean, Tensor& save_var,      \
    const BatchNormParams& p), (x, gamma, beta, y, running_mean, running_var, save_mean, save_var,  \
    p), (x, gamma, beta, y, running_mean, running_var, save_mean, save_var))                        \
  X(batch_norm_forward_inference, (const Tensor& x, const Tensor& gamma, const Tensor& beta,       \
    const Tensor& running_mean, const Tensor& running_var, Tensor& y, const BatchNormParams& p),    \
    (x, gamma, beta, running_mean, running_var, y, p), (x, gamma, beta, running_mean, running_var, \
    y))                                                                                             \
  X(batch_norm_backward, (const Tensor& dy, const Tensor& x, const Tensor& gamma,                  \
    const Tensor& save_mean, const Tensor& save_var, Tensor& dx, Tensor& dgamma, Tensor& dbeta,    \
    const BatchNormParams& p), (dy, x, gamma, save_mean, save_var, dx, dgamma, dbeta, p),          \
    (dy, x, gamma, save_mean, save_var, dx, dgamma, dbeta))                                         \
  X(batch_norm_local_stats, (const Tensor& x, Tensor& stats), (x, stats), (x, stats))              \
  X(batch_norm_stats_to_moments, (const Tensor& stats, Tensor& running_mean, Tensor& running_var,  \
    Tensor& save_mean, Tensor& save_var, const BatchNormParams& p), (stats, running_mean,          \
    running_var, save_mean, save_var, p), (stats, running_mean, running_var, save_mean, save_var))  \
  X(batch_norm_backward_reduce, (const Tensor& dy, const Tensor& x, const Tensor& save_mean,       \
    const Tensor& save_var, Tensor& sums, Tensor& dgamma, Tensor& dbeta, const BatchNormParams& p), \
    (dy, x, save_mean, save_var, sums, dgamma, dbeta, p),                                           \
    (dy, x, save_mean, save_var, sums, dgamma, dbeta))                                              \
  X(batch_norm_backward_apply, (const Tensor& dy, const Tensor& x, const Tensor& gamma,            \
    const Tensor& save_mean, const Tensor& save_var, const Tensor& sums, Tensor& dx,               \
    const BatchNormParams& p), (dy, x, gamma, save_mean, save_var, sums, dx, p),                    \
    (dy, x, gamma, save_mean, save_var, sums, dx))                                                  \
  X(linear_forward, (const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y), (x, w, b, y),  \
    (x, w, b, y))                                                                                   \
  X(linear_backward_data, (const Tensor& dy, const Tensor& w, Tensor& dx), (dy, w, dx),            \
    (dy, w, dx))                                                                                    \
  X(linear_backward_weights, (const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db),          \
    (x, dy, dw, db), (x, dy, dw, db))                                                               \
  X(max_pool2d_forward, (const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p),      \
    (x, y, indices, p), (x, y, indices))                                                            \
  X(max_pool2d_backward, (const Tensor& dy, const Tensor& indices, Tensor& dx,                     \
                          const Pool2dParams& p), (dy, indices, dx, p), (dy, indices, dx))          \
  X(avg_pool2d_forward, (const Tensor& x, Tensor& y, const Pool2dParams& p), (x, y, p), (x, y))    \
  X(avg_pool2d_backward, (const Tensor& dy, Tensor& dx, const Pool2dParams& p), (dy, dx, p),       \
    (dy, dx))                                                                                       \
  X(global_avg_pool_forward, (const Tensor& x, Tensor& y), (x, y), (x, y))                         \
  X(global_avg_pool_backward, (const Tensor& dy, Tensor& dx), (dy, dx), (dy, dx))                  \
  X(activation_forward, (Activation kind, float alpha, const Tensor& x, Tensor& y),                \
    (kind, alpha, x, y), (x, y))                                                                    \
  X(activation_backward, (Activation kind, float alpha, const Tensor& y, const Tensor& dy,         \
                          Tensor& dx), (kind, alpha, y, dy, dx), (y, dy, dx))                       \
  X(heaviside_forward, (const Tensor& x, Tensor& y, float value_at_zero), (x, y, value_at_zero),   \
    (x, y))                                                                                         \
  X(softmax_forward, (const Tensor& x, Tensor& y), (x, y), (x, y))                                 \
  X(softmax_backward, (const Tensor& y, const Tensor& dy, Tensor& dx), (y, dy, dx), (y, dy, dx))   \
  X(softmax_axis_forward, (const Tensor& x, Tensor& y, int axis), (x, y, axis), (x, y))            \
  X(softmax_axis_backward, (const Tensor& y, const Tensor& dy, Tensor& dx, int axis),              \
    (y, dy, dx, axis), (y, dy, dx))                                                                \
  X(lrn_forward, (const Tensor& x, Tensor& y, Tensor& scale, const LrnParams& p),                  \
    (x, y, scale, p), (x, y, scale))                                                               \
  X(lrn_backward, (const Tensor& x, const Tensor& y, const Tensor& scale, const Tensor& dy,        \
    Tensor& dx, const LrnParams& p), (x, y, scale, dy, dx, p), (x, y, scale, dy, dx))              \
  X(copy_into_axis, (const Tensor& part, Tensor& whole, int axis, std::int64_t offset),            \
    (part, whole, axis, offset), (part, whole))                                                    \
  X(copy_from_axis, (const Tensor& whole, Tensor& part, int axis, std::int64_t offset),            \
    (whole, part, axis, offset), (whole, part))                                                    \
  X(channel_scale_forward, (const Tensor& x, const Tensor& scale, const Tensor& bias, Tensor& y,   \
    int axis), (x, scale, bias, y, axis), (x, scale, bias, y))                                     \
  X(channel_scale_backward, (const Tensor& x, const Tensor& scale, const Tensor& dy, Tensor& dx,   \
    Tensor& dscale, Tensor& dbias, int axis), (x, scale, dy, dx, dscale, dbias, axis),             \
    (x, scale, dy, dx, dscale, dbias))                                                             \
  X(power_forward, (const Tensor& x, Tensor& y, const PowerParams& p), (x, y, p), (x, y))          \
  X(power_backward, (const Tensor& x, const Tensor& dy, Tensor& dx, const PowerParams& p),         \
    (x, dy, dx, p), (x, dy, dx))                                                                   \
  X(dropout_forward, (const Tensor& x, Tensor& y, Tensor& mask, float p, const RngStream& stream), \
    (x, y, mask, p, stream), (x, y, mask))                                                          \
  X(dropout_backward, (const Tensor& dy, const Tensor& mask, Tensor& dx, float p),                 \
    (dy, mask, dx, p), (dy, mask, dx))                                                              \
  X(add, (const Tensor& a, const Tensor& b, Tensor& y), (a, b, y), (a, b, y))                      \
  X(axpy, (float alpha, const Tensor& x, Tensor& y), (alpha, x, y), (x, y))                        \
  X(scale, (float alpha, Tensor& x), (alpha, x), (x))                                              \
  X(mul, (const Tensor& a, const Tensor& b, Tensor& y), (a, b, y), (a, b, y))                      \
  X(max_into, (const Tensor& x, float index, Tensor& y, Tensor& mask), (x, index, y, mask),        \
    (x, y, mask))                                                                                   \
  X(max_backward, (const Tensor& mask, float index, const Tensor& dy, Tensor& dx),                 \
    (mask, index, dy, dx), (mask, dy, dx))                                                          \
  X(optimizer_update, (const OptimizerStep& step, Tensor& params, const Tensor& grads,             \
    Tensor& slot0, Tensor& slot1), (step, params, grads, slot0, slot1),                             \
    (params, grads, slot0, slot1))                                                                  \
  X(sum_squares_finite, (const Tensor& x, std::int64_t count, Tensor& out), (x, count, out),       \
    (x, out))                                                                                       \
  X(top1_hits, (const Tensor& probs, const Tensor& labels, std::int64_t n, std::int64_t ignored,   \
    Tensor& out), (probs, labels, n, ignored, out), (probs, labels, out))                           \
  X(regression_errors, (const Tensor& prediction, const Tensor& target, std::int64_t n,            \
    bool sigmoid, Tensor& out), (prediction, target, n, sigmoid, out), (prediction, target, out))   \
  X(cast, (const Tensor& x, Tensor& y), (x, y), (x, y))                                            \
  X(reorder, (const Tensor& x, Tensor& y), (x, y), (x, y))                                         \
  X(softmax_cross_entropy_forward, (const Tensor& logits, const Tensor& labels, Tensor& probs,     \
    Tensor& loss, const CrossEntropyParams& p), (logits, labels, probs, loss, p),                   \
    (logits, labels, probs, loss, p.class_weights))                                                 \
  X(softmax_cross_entropy_backward, (const Tensor& probs, const Tensor& labels, Tensor& dlogits,   \
    float dloss, const CrossEntropyParams& p), (probs, labels, dlogits, dloss, p),                  \
    (probs, labels, dlogits, p.class_weights))                                                      \
  X(mse_forward, (const Tensor& pred, const Tensor& target, Tensor& loss), (pred, target, loss),   \
    (pred, target, loss))                                                                           \
  X(mse_backward, (const Tensor& pred, const Tensor& target, Tensor& dpred, float dloss),          \
    (pred, target, dpred, dloss), (pred, target, dpred))                                            \
  X(pointwise_loss_forward, (const PointwiseLossParams& p, const Tensor& pred,                    \
    const Tensor& target, Tensor& loss), (p, pred, target, loss), (pred, target, loss))             \
  X(pointwise_loss_backward, (const PointwiseLossParams& p, const Tensor& pred,                   \
    const Tensor& target, Tensor& dpred, float dloss), (p, pred, target, dpred, dloss),             \
    (pred, target, dpred))                                                                          \
  X(l1_penalty_forward, (const Tensor& w, float coeff, Tensor& loss), (w, coeff, loss), (w, loss)) \
  X(l1_penalty_backward, (const Tensor& w, float coeff, Tensor& dw), (w, coeff, dw), (w, dw))      \
  X(l2_penalty_forward, (const Tensor& w, float coeff, Tensor& loss), (w, coeff, loss), (w, loss)) \
  X(l2_penalty_backward, (const Tensor& w, float coeff, Tensor& dw), (w, coeff, dw), (w, dw))

// Which ops take blocked tensors (engine/tensor/layout.h); every other op requires plain ones, and
// the dispatch throws an InternalError naming the op that got a blocked tensor (the net's layout
// planner must have put a reorder before it). Element-wise ops read memory in order, so any one
// layout does, all their tensors alike; the others read each tensor's tag (weights stay plain,
// but for a 16-bit convolution in an nhwc plan, whose copies cast writes nhwc).
#define RUCHE_OPS_ELEMENTWISE(X) X(add) X(axpy) X(scale) X(mul) X(max_into) X(max_backward) \
  X(activation_forward) X(activation_backward)
#define RUCHE_OPS_TAKING_BLOCKED(X) X(reorder) X(cast) X(dropout_forward) X(dropout_backward) \
  X(conv2d_forward) X(conv2d_backward_data) X(conv2d_backward_weights) \
  X(batch_norm_forward_training) X(batch_norm_forward_inference) X(batch_norm_backward) \
  X(max_pool2d_forward) X(max_pool2d_backward) X(avg_pool2d_forward) X(avg_pool2d_backward) \
  X(copy_into_axis) X(copy_from_axis)
// clang-format on

struct OpTable {
// NOLINTNEXTLINE(bugprone-macro-parentheses): name is a declarator, params a parameter list
#define RUCHE_OP_SLOT(name, params, args, tensors) void(*name) params = nullptr;
  RUCHE_OPS(RUCHE_OP_SLOT)
#undef RUCHE_OP_SLOT
};

// The CPU implementations (ops/cpu), always present.
const OpTable& cpu_op_table();
// The CUDA implementations (ops/cuda); nullptr when ruche was built without CUDA.
const OpTable* cuda_op_table();

}  // namespace ruche::ops
