// BatchSource: what the trainer and evaluate() draw batches from. BatchLoader serves indexable
// datasets (IDX, CIFAR, npz, ImageFolder, synthetic), ShardLoader a split of `ruche convert`
// shards. Their positions within an epoch differ: an indexable source resumes at a step (the
// trainer derives it from the world-size independent sample count), a streamed one from the text
// of its own position (ShardPosition), which the checkpoint keeps.
#pragma once

#include <cstdint>
#include <string>

#include "engine/error.h"
#include "engine/tensor/tensor.h"

namespace ruche {

class BatchSource {
 public:
  virtual ~BatchSource() = default;

  // Starts `epoch` at batch `step` (0: its beginning). Streamed sources take only 0.
  virtual void start_epoch(std::uint32_t epoch, std::int64_t step = 0) = 0;
  // Copies the next batch into x and y and returns how many rows are real (0: the epoch is over).
  virtual std::int64_t next(Tensor& x, Tensor& y) = 0;
  // Steps of a whole epoch; and of this one, from where it was started to its end.
  virtual std::int64_t steps_per_epoch() const = 0;
  virtual std::int64_t steps_this_epoch() const = 0;

  // Streamed sources: where the epoch is, as text for a checkpoint ("" for indexable ones), and a
  // start from such a text (its epoch included).
  virtual std::string stream_position() const { return ""; }
  virtual void start_from(const std::string& stream_position) {
    RUCHE_FAIL() << "a checkpoint's data position '" << stream_position
                 << "' is for shards, but this run reads an indexable dataset";
  }
};

}  // namespace ruche
