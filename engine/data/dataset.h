// Dataset: an indexable set of samples (images [C, H, W] or vectors [D]) with int labels, or
// float targets (regression).
// Sources keep their samples decoded in memory (uint8 pixels for IDX and CIFAR, float32 for npz),
// so reading one is a copy and a scale; the loader's threads call read() concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/rng/philox.h"
#include "engine/tensor/shape.h"

namespace ruche {

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual std::int64_t size() const = 0;
  // One sample's shape: [C, H, W] for images (e.g. [1, 28, 28], [3, 32, 32]) or [D].
  virtual const Shape& sample_shape() const = 0;
  virtual int num_classes() const = 0;
  // Class index -> name (what RUN/labels.txt holds); "0", "1", ... when the source has none.
  virtual const std::vector<std::string>& class_names() const = 0;
  // What the samples are: "fashion-mnist", "mnist", "cifar10", "cifar100", "npz", "synthetic".
  // Picks the default normalisation.
  virtual const std::string& kind() const = 0;

  virtual std::int32_t label(std::int64_t index) const = 0;
  // Writes sample `index` to out (sample_shape().numel() floats, C-major): pixels scaled to
  // [0, 1] for uint8 sources, the stored values for float sources. Thread-safe.
  virtual void read(std::int64_t index, float* out) const = 0;

  // True for sources whose samples come out of read() already transformed and normalised
  // (ImageFolder: crop, resize and normalise happen on the decoded JPEG); the loader's Transform
  // (padding crop, flip, normalisation for small images) leaves their samples alone.
  virtual bool transforms_itself() const { return false; }
  // Sample `index` with its training augmentation drawn from `stream` (seed, augment, epoch,
  // index), for sources that transform themselves; the others read() it as it is.
  virtual void read_augmented(std::int64_t index, const RngStream& stream, float* out) const {
    (void)stream;
    read(index, out);
  }

  // A float target per sample (regression: an npz's float y, e.g. [K] or [1, H, W]); empty when
  // the target is the class label (every source but a float-y npz).
  virtual const Shape& target_shape() const {
    static const Shape none;
    return none;
  }
  // Writes sample `index`'s float target (target_shape().numel() floats). Thread-safe.
  virtual void read_target(std::int64_t index, float* out) const {
    (void)index;
    (void)out;
  }

  std::int64_t sample_numel() const { return sample_shape().numel(); }
};

using DatasetPtr = std::shared_ptr<const Dataset>;

// What a source provides: its training set and, where it has them, its own validation set
// (ImageFolder's val/) and test set (else null).
struct DataSources {
  DatasetPtr train;
  DatasetPtr test;
  DatasetPtr val = nullptr;  // initialised, so {train, test} still reads as before
};

// "0", "1", ..., "n-1".
std::vector<std::string> numbered_class_names(int n);

}  // namespace ruche
