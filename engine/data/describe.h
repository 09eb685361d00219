// `ruche data describe`: what a data set holds before anything is trained on it. The size and
// class counts of each split as a run splits it, the imbalance ratio and the flags that would
// balance it, per-channel statistics (compute_normalization, the code the run's input record
// uses), the value range, a grid of samples per class, and leakage checks: exact duplicates by a
// hash of the decoded sample, near duplicates by a 64-bit perceptual hash (dHash) within a
// Hamming distance, between train and test, train and validation, and within train.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/data/open.h"
#include "engine/tensor/tensor.h"

namespace ruche {

// One split's samples as describe reads them: each sample's values as Dataset::read gives them
// (pixels in [0, 1], npz values as stored) and its label, in order.
struct SampleStream {
  std::string name;  // "train", "val", "test"
  std::int64_t size = 0;
  // Calls `visit(index, values, label)` for every sample in order.
  std::function<void(const std::function<void(std::int64_t, const float*, std::int32_t)>&)>
      for_each;
  // Sample i's values into out; null where the source streams (shards).
  std::function<void(std::int64_t, float*)> read;
};

// A 256-bit difference hash (dHash): the sample's mean over channels, area-resampled to 17 x 16
// cells, one bit per horizontal neighbour pair, set where the left cell exceeds the right one by
// more than 5% of the cells' range (so flat regions, a background, do not flip with noise),
// row-major. Images [C, H, W] only. (A 64-bit 9 x 8 dHash puts most Fashion-MNIST test images
// within 2 bits of some training image: too coarse to tell a copy from a look-alike.)
using PerceptualHash = std::array<std::uint64_t, 4>;
PerceptualHash perceptual_hash(const float* sample, const Shape& shape);
int hash_distance(const PerceptualHash& a, const PerceptualHash& b);
// 64-bit FNV-1a over the sample's float bytes: equal samples, equal hashes.
std::uint64_t exact_hash(const float* sample, std::int64_t numel);

struct DescribeOptions {
  int near_threshold = 4;     // near duplicates: dHash Hamming distance <= this, of 256 bits
  int samples_per_class = 8;  // the grid's columns
  std::int64_t stats_samples = 10000;  // compute_normalization's limit, as --normalize auto
  double val_fraction = 0.1;           // the run's held-out validation (sources without their own)
  std::uint64_t seed = 1;              // the run's seed: the same split
  // Near-duplicate search compares every pair; above this many pairs a check is skipped (said).
  double max_pairs = 4e9;
  double imbalance_flag_ratio = 1.5;  // above it, class-balancing flags are suggested
};

struct SplitFacts {
  std::string name;
  std::int64_t size = 0;
  std::vector<std::int64_t> class_counts;
  double imbalance = 0;  // largest class count over smallest (inf when a class is empty)
};

// Duplicates of samples of split `b` (the later one: test, val, or train itself) in split `a`.
struct DuplicateCheck {
  std::string a, b;
  bool exact = true;     // false: near (dHash within the threshold, not exact)
  bool skipped = false;  // too many pairs (near) or vectors (near): not checked
  std::string why_skipped;
  std::int64_t samples = 0;  // samples of b with a duplicate in a (within a split: copies)
  std::vector<std::pair<std::int64_t, std::int64_t>> examples;  // (index in a, index in b), <= 5
};

struct DataDescription {
  std::string data, kind;
  Shape sample_shape;
  // uint8 pixels (read as / 255: IDX, CIFAR, JPEG, PNG, an npz of uint8 told by its values all
  // being k / 255), else float32 values
  bool pixels = true;
  std::vector<std::string> class_names;
  std::vector<SplitFacts> splits;
  std::vector<float> mean, std;            // per channel, of the training split, in read() units
  std::vector<float> auto_mean, auto_std;  // what --normalize auto records (published or computed)
  double min = 0, max = 0;  // over every training sample, in raw units (0-255 for pixels)
  std::vector<std::string> suggested_flags;
  std::string balance_note;
  int near_threshold = 0;
  std::vector<DuplicateCheck> duplicates;
  // The grid: up to samples_per_class training samples of each class, class-major.
  Tensor grid;  // f32 [n, sample...] in read() units
  std::vector<std::int32_t> grid_labels;
  // Up to 4 example pairs of each check that found duplicates (indexable sources): the first
  // split's sample, the second's, and which entry of `duplicates` they illustrate.
  Tensor pair_a, pair_b;
  std::vector<std::int32_t> pair_check;
};

// The splits of `spec` as training opens them (indexable sources: open_splits; .tar shards:
// their train, val and test shards through the validation transform at the loader's crop).
std::vector<SampleStream> describe_streams(const DataSpec& spec, const DescribeOptions& options,
                                           DataDescription& out);

// Reads every split once and fills the description.
DataDescription describe_data(const DataSpec& spec, const DescribeOptions& options);

// The printed report.
std::string render_description(const DataDescription& d);
// The same as JSON (DIR/describe.json).
std::string description_json(const DataDescription& d);

}  // namespace ruche
