// Subset views and the train/val/test splits. Where a dataset has no validation split of its
// own (IDX, CIFAR, npz), a stratified val_fraction of each class of the training set is held
// out, chosen by Philox keyed by the seed (RngPurpose::sampler, layer 1, index = class): the
// same seed gives the same split on every machine, world size and resume. The test split is
// the source's own (t10k, test_batch); it is for the final confirmation only.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/data/dataset.h"

namespace ruche {

// The samples of `base` at `indices`, in that order.
class Subset : public Dataset {
 public:
  Subset(DatasetPtr base, std::vector<std::int64_t> indices);

  std::int64_t size() const override { return static_cast<std::int64_t>(indices_.size()); }
  const Shape& sample_shape() const override { return base_->sample_shape(); }
  int num_classes() const override { return base_->num_classes(); }
  const std::vector<std::string>& class_names() const override { return base_->class_names(); }
  const std::string& kind() const override { return base_->kind(); }
  std::int32_t label(std::int64_t i) const override { return base_->label(at(i)); }
  void read(std::int64_t i, float* out) const override { base_->read(at(i), out); }
  bool transforms_itself() const override { return base_->transforms_itself(); }
  void read_augmented(std::int64_t i, const RngStream& stream, float* out) const override {
    base_->read_augmented(at(i), stream, out);
  }
  const Shape& target_shape() const override { return base_->target_shape(); }
  void read_target(std::int64_t i, float* out) const override { base_->read_target(at(i), out); }

  const std::vector<std::int64_t>& indices() const { return indices_; }

 private:
  std::int64_t at(std::int64_t i) const { return indices_[static_cast<std::size_t>(i)]; }
  DatasetPtr base_;
  std::vector<std::int64_t> indices_;
};

struct HoldOut {
  std::vector<std::int64_t> train;  // ascending
  std::vector<std::int64_t> val;    // ascending
};

// Per class, round(val_fraction * count) samples go to val, the rest to train; samples whose
// label is no class (a loss's ignore_label) are split the same way as one group.
HoldOut stratified_holdout(const Dataset& d, double val_fraction, std::uint64_t seed);

struct DataSplits {
  DatasetPtr train;
  DatasetPtr val;   // null when val_fraction is 0
  DatasetPtr test;  // null when the source has none
};

// A source with its own validation split (ImageFolder's val/) keeps it and ignores val_fraction.
DataSplits make_splits(const DataSources& sources, double val_fraction, std::uint64_t seed);

}  // namespace ruche
