// The optimizer over the flat buffers (docs/ARCHITECTURE.md "The flat buffer", "Numerical
// conventions"): torch.optim's SGD, Adam, AdamW and RMSprop, and LARS, as one fused loop
// (ops::optimizer_update) over the trainable ranges of params() and grads(), on their device.
//
// Per range: lr = lr * lr_mult; weight decay and L1 decay are scaled by decay_mult (0 for biases
// and batch-norm parameters when no_decay_bn_bias). Every optimizer first adds l1 * sign(p) to the
// gradient, and, except AdamW, the L2 term wd * p. Then, with d the decayed gradient:
//   sgd      v = mu v + d (dampening 0); d = nesterov ? d + mu v : v (mu > 0); p -= lr d
//            momentum_form caffe (Caffe's SGDSolver): v' = mu v + lr d;
//            p -= nesterov ? (1 + mu) v' - mu v : v' (the same while lr is constant)
//   adam     m = b1 m + (1 - b1) d; s = b2 s + (1 - b2) d^2;
//            p -= lr / (1 - b1^t) * m / (sqrt(s) / sqrt(1 - b2^t) + eps)
//   adamw    p *= 1 - lr wd, then adam without the L2 term
//   rmsprop  s = alpha s + (1 - alpha) d^2; a = sqrt(s) + eps;
//            mu > 0: v = mu v + d / a, p -= lr v;  else p -= lr d / a
//   lars     sgd on d * ratio, ratio = trust * ||p|| / (||g|| + wd ||p||) per tensor (norms of the
//            parameter and of the raw gradient, in double; no eps term), as torchlars and NVIDIA's
//            LARC (clip off). ratio = 1 for biases and batch-norm parameters, and when ||p|| or
//            ||g|| is 0.
// Solver fields: momentum and nesterov (sgd, lars; rmsprop takes momentum only when the solver
// sets it explicitly, since its default 0.9 is SGD's and torch's RMSprop has none), beta1, beta2,
// epsilon (adam, adamw, rmsprop), rms_alpha, lars_trust, weight_decay, l1_decay,
// no_decay_bn_bias, momentum_form (sgd).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/graph/net.h"
#include "engine/optim/param_table.h"
#include "engine/proto/ruche.pb.h"
#include "engine/tensor/tensor.h"
#include "ops/optimizer_update.h"

namespace ruche {

using ops::OptimizerHyper;
using ops::OptimizerKind;

class Optimizer {
 public:
  // The slots live on `device`, the device of the net's params.
  Optimizer(OptimizerKind kind, const OptimizerHyper& hyper, std::vector<ParamRange> ranges,
            std::int64_t num_trainable, Device device = Device::cpu());
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of params[0, num_trainable) from grads (num_trainable elements) at learning rate
  // lr, on the buffers' device (the slots'). Increments step_count() first (Adam's t is the new
  // count). Allocates nothing after the first step.
  void step(Tensor& params, const Tensor& grads, float lr);

  // The optimizer state for checkpoints, by torch's state names: momentum_buffer (sgd and lars
  // with momentum, rmsprop with momentum), exp_avg and exp_avg_sq (adam, adamw), square_avg
  // (rmsprop). Each is f32 [num_trainable], laid out as the gradient buffer.
  std::vector<std::pair<std::string, Tensor*>> slots();
  std::int64_t step_count() const { return step_count_; }
  void set_step_count(std::int64_t steps) { step_count_ = steps; }

  OptimizerKind kind() const { return kind_; }
  const char* name() const;
  const OptimizerHyper& hyper() const { return hyper_; }
  const std::vector<ParamRange>& ranges() const { return ranges_; }
  std::int64_t num_trainable() const { return num_trainable_; }
  Device device() const { return device_; }
  // ZeRO-1: this optimizer updates elements [offset(), offset() + num_trainable()) of the net's
  // `whole()` trainable ones; its ranges, slots, params and grads are addressed from offset().
  // Plainly offset() is 0 and whole() is num_trainable().
  std::int64_t offset() const { return offset_; }
  std::int64_t whole() const { return whole_ < 0 ? num_trainable_ : whole_; }
  void set_shard(std::int64_t offset, std::int64_t whole) {
    offset_ = offset;
    whole_ = whole;
  }

 private:
  OptimizerKind kind_;
  OptimizerHyper hyper_;
  std::vector<ParamRange> ranges_;
  std::vector<ops::UpdateRange> update_ranges_;  // ranges_ as the op takes them
  std::vector<ops::RangeStep> range_steps_;      // filled each step: no allocation
  std::int64_t num_trainable_ = 0;
  std::int64_t step_count_ = 0;
  std::int64_t offset_ = 0, whole_ = -1;
  Device device_;
  std::vector<std::pair<std::string, Tensor>> slots_;
};

// The optimizer the solver names (type: sgd, adam, adamw, rmsprop, lars) over the trainable
// entries of `table` (Net::param_table(), Net::num_trainable()), its slots on `device` (the
// params'). A bad type or hyperparameter is a ruche::Error.
std::unique_ptr<Optimizer> make_optimizer(const proto::SolverParameter& solver,
                                          const std::vector<ParamEntry>& table,
                                          std::int64_t num_trainable,
                                          Device device = Device::cpu());

// ZeRO-1: the optimizer over elements [begin, end) of the trainable buffer only (a rank's range,
// cut at tensor boundaries: a tensor crossing an end is an InternalError). Its slots hold
// end - begin elements; step() takes the params and grads of that range.
std::unique_ptr<Optimizer> make_optimizer(const proto::SolverParameter& solver,
                                          const std::vector<ParamEntry>& table,
                                          std::int64_t num_trainable, Device device,
                                          std::int64_t begin, std::int64_t end);

// The names make_optimizer accepts.
std::vector<std::string> optimizer_types();

}  // namespace ruche
