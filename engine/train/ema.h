// --ema DECAY: an exponential moving average of the weights, as torch.optim.swa_utils'
// get_ema_multi_avg_fn with use_buffers and timm's ModelEmaV2: after every optimizer step
// ema = decay * ema + (1 - decay) * w, over the parameters and the batch-norm running statistics
// (num_batches_tracked is a count: copied, not averaged). It starts as the initial weights, is
// validated beside the raw weights, saved as RUN/ema.npz, and travels in checkpoints (regions
// "ema.params" and "ema.buffers") so a resume continues it exactly.
#pragma once

#include "engine/checkpoint/checkpoint.h"
#include "engine/graph/net.h"

namespace ruche {

class WeightAverage {
 public:
  // A copy of the net's weights now, averaged with decay in (0, 1).
  WeightAverage(Net& net, float decay);

  // After an optimizer step: folds the net's weights in.
  void update();
  // Appends the average's regions to a training state layout (after everything else in it).
  void add_to(StateLayout& layout);
  // Swaps the average into the net (and the net's own weights out): call again to swap back.
  void swap();
  float decay() const { return decay_; }

 private:
  Net& net_;
  float decay_;
  Tensor params_, buffers_;                                    // like net.params(), net.buffers()
  std::vector<std::pair<std::int64_t, std::int64_t>> counts_;  // num_batches_tracked ranges
};

}  // namespace ruche
