#include "engine/metrics/eval_accumulator.h"

#include <algorithm>
#include <cmath>

namespace ruche {

EvalAccumulator::EvalAccumulator(int num_classes, bool keep_scores, std::int64_t expected_samples)
    : keep_scores_(keep_scores),
      confusion_(num_classes),
      label_ranks_(static_cast<std::size_t>(std::max(num_classes, 0))) {
  RUCHE_REQUIRE(num_classes >= 1) << "eval: " << num_classes << " classes";
  if (keep_scores_ && expected_samples > 0) {
    scores_.reserve(static_cast<std::size_t>(expected_samples) * num_classes);
    labels_.reserve(static_cast<std::size_t>(expected_samples));
  }
}

void EvalAccumulator::add(const Tensor& probabilities, const Tensor& labels) {
  const int classes = num_classes();
  RUCHE_REQUIRE(probabilities.ndim() == 2 && probabilities.size(1) == classes &&
                labels.ndim() == 1 && labels.size(0) == probabilities.size(0))
      << "eval: expected probabilities [B, " << classes << "] and labels [B], got "
      << probabilities.str() << " and " << labels.str();
  probabilities.check_device(Device::cpu(), "eval probabilities");
  labels.check_device(Device::cpu(), "eval labels");
  const Tensor p = probabilities.contiguous();  // the same tensor when already contiguous
  const Tensor y = labels.contiguous();
  const float* rows = p.data<float>();
  const std::int64_t batch = p.size(0);
  for (std::int64_t i = 0; i < batch; ++i) {
    const float* row = rows + i * classes;
    const std::int64_t label = label_at(y, i);
    RUCHE_REQUIRE(label >= 0 && label < classes)
        << "eval: label " << label << " outside [0, " << classes << ")";
    for (int c = 0; c < classes; ++c) {
      RUCHE_REQUIRE(!std::isnan(row[c])) << "eval: NaN score for sample " << samples_ + i;
    }
    const int truth = static_cast<int>(label);
    confusion_.add(truth, argmax(row, classes));
    ++label_ranks_[static_cast<std::size_t>(rank_of_label(row, classes, truth))];
    if (keep_scores_) {
      scores_.insert(scores_.end(), row, row + classes);
      labels_.push_back(truth);
    }
  }
  samples_ += batch;
}

void EvalAccumulator::merge(const EvalAccumulator& other) {
  RUCHE_CHECK(other.num_classes() == num_classes() && other.keep_scores_ == keep_scores_)
      << "merging mismatched eval accumulators";
  confusion_.merge(other.confusion_);
  samples_ += other.samples_;
  for (std::size_t r = 0; r < label_ranks_.size(); ++r) label_ranks_[r] += other.label_ranks_[r];
  scores_.insert(scores_.end(), other.scores_.begin(), other.scores_.end());
  labels_.insert(labels_.end(), other.labels_.begin(), other.labels_.end());
}

void EvalAccumulator::reset() {
  confusion_.reset();
  samples_ = 0;
  std::fill(label_ranks_.begin(), label_ranks_.end(), 0);
  scores_.clear();  // keeps the capacity
  labels_.clear();
}

std::vector<std::int64_t> EvalAccumulator::tallies() const {
  std::vector<std::int64_t> t = confusion_.counts();
  t.push_back(samples_);
  t.insert(t.end(), label_ranks_.begin(), label_ranks_.end());
  return t;
}

void EvalAccumulator::set_totals(const std::vector<std::int64_t>& tallies,
                                 std::vector<float> scores, std::vector<std::int32_t> labels) {
  const std::size_t cells = confusion_.counts().size();
  RUCHE_CHECK(tallies.size() == cells + 1 + label_ranks_.size())
      << "eval: " << tallies.size() << " tallies for " << cells << " confusion cells";
  const auto at = [&](std::size_t i) { return tallies.begin() + static_cast<std::ptrdiff_t>(i); };
  std::copy(at(0), at(cells), confusion_.counts().begin());
  samples_ = tallies[cells];
  std::copy(at(cells + 1), tallies.end(), label_ranks_.begin());
  if (keep_scores_) {
    RUCHE_CHECK(labels.size() == static_cast<std::size_t>(samples_) &&
                scores.size() == labels.size() * static_cast<std::size_t>(num_classes()))
        << "eval: " << labels.size() << " gathered labels for " << samples_ << " samples";
    scores_ = std::move(scores);
    labels_ = std::move(labels);
  }
}

std::vector<float> EvalAccumulator::class_scores(int c) const {
  RUCHE_REQUIRE(keep_scores_) << "eval: scores were not kept";
  RUCHE_REQUIRE(c >= 0 && c < num_classes()) << "eval: no class " << c;
  std::vector<float> out(labels_.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = scores_[i * num_classes() + c];
  return out;
}

std::vector<std::uint8_t> EvalAccumulator::is_class(int c) const {
  RUCHE_REQUIRE(keep_scores_) << "eval: labels were not kept";
  std::vector<std::uint8_t> out(labels_.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = labels_[i] == c;
  return out;
}

std::int64_t EvalAccumulator::top_k_correct(int k) const {
  const auto ranks = std::min(static_cast<std::size_t>(std::max(k, 0)), label_ranks_.size());
  std::int64_t hits = 0;
  for (std::size_t r = 0; r < ranks; ++r) hits += label_ranks_[r];
  return hits;
}

EvalResult EvalAccumulator::result(const std::vector<int>& top_k) const {
  EvalResult r;
  r.samples = samples_;
  r.num_classes = num_classes();
  r.report = classification_report(confusion_);
  r.accuracy = r.report.accuracy;
  const auto fraction = [&](int k) {
    return samples_ ? static_cast<double>(top_k_correct(k)) / static_cast<double>(samples_) : 0.0;
  };
  if (num_classes() > 5) r.top5 = fraction(5);
  for (int k : top_k) r.top_k.emplace_back(k, fraction(k));
  r.confusion = confusion_;
  if (keep_scores_) r.auc = roc_auc_ovr(scores_, labels_, num_classes());
  return r;
}

}  // namespace ruche
