#include "engine/data/split.h"

#include <algorithm>
#include <cmath>

#include "engine/data/sampler.h"
#include "engine/error.h"
#include "engine/rng/philox.h"

namespace ruche {

Subset::Subset(DatasetPtr base, std::vector<std::int64_t> indices)
    : base_(std::move(base)),
      indices_(std::move(indices)) {
  for (std::int64_t i : indices_) {
    RUCHE_CHECK(i >= 0 && i < base_->size()) << "subset index " << i << " of " << base_->size();
  }
}

HoldOut stratified_holdout(const Dataset& d, double val_fraction, std::uint64_t seed) {
  RUCHE_REQUIRE(val_fraction >= 0 && val_fraction < 1)
      << "--val-fraction " << val_fraction << ": expected a fraction in [0, 1)";
  // One group per class, and one last for labels of no class (a loss's ignore_label).
  const int classes = d.num_classes();
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(classes) + 1);
  for (std::int64_t i = 0; i < d.size(); ++i) {
    const std::int32_t y = d.label(i);
    by_class[static_cast<std::size_t>(y >= 0 && y < classes ? y : classes)].push_back(i);
  }
  HoldOut h;
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    std::vector<std::int64_t>& members = by_class[c];
    const RngStream s{seed, RngPurpose::sampler, 0, static_cast<std::uint32_t>(c), 1};
    shuffle_in_place(members, s);
    const auto n_val =
        static_cast<std::size_t>(std::llround(val_fraction * static_cast<double>(members.size())));
    h.val.insert(h.val.end(), members.begin(),
                 members.begin() + static_cast<std::ptrdiff_t>(n_val));
    h.train.insert(h.train.end(), members.begin() + static_cast<std::ptrdiff_t>(n_val),
                   members.end());
  }
  std::sort(h.train.begin(), h.train.end());
  std::sort(h.val.begin(), h.val.end());
  return h;
}

DataSplits make_splits(const DataSources& sources, double val_fraction, std::uint64_t seed) {
  RUCHE_CHECK(sources.train != nullptr) << "make_splits without a training set";
  DataSplits s;
  s.test = sources.test;
  if (sources.val) {  // the source's own validation split: nothing is carved out of train
    s.train = sources.train;
    s.val = sources.val;
    return s;
  }
  if (val_fraction == 0) {
    s.train = sources.train;
    return s;
  }
  HoldOut h = stratified_holdout(*sources.train, val_fraction, seed);
  RUCHE_REQUIRE(!h.train.empty() && !h.val.empty())
      << "--val-fraction " << val_fraction << " of " << sources.train->size()
      << " training samples leaves " << h.train.size() << " for training and " << h.val.size()
      << " for validation";
  s.train = std::make_shared<Subset>(sources.train, std::move(h.train));
  s.val = std::make_shared<Subset>(sources.train, std::move(h.val));
  return s;
}

}  // namespace ruche
