// EvalAccumulator: the metrics of an evaluation pass, fed batch by batch (probabilities [B, C],
// labels [B]); result() computes accuracy, top-5 and any other top-k, the per-class report, the
// confusion matrix and, when scores are kept, one-vs-rest ROC AUC.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "engine/metrics/classification.h"
#include "engine/metrics/confusion_matrix.h"
#include "engine/metrics/roc.h"
#include "engine/tensor/tensor.h"

namespace ruche {

struct EvalResult {
  std::int64_t samples = 0;
  int num_classes = 0;
  double accuracy = 0;                        // top-1
  std::optional<double> top5;                 // only with more than 5 classes (else it is always 1)
  std::vector<std::pair<int, double>> top_k;  // (k, top-k accuracy) for each k result() was asked
  ClassificationReport report;
  ConfusionMatrix confusion;
  std::optional<AucSummary> auc;  // only when the accumulator keeps scores
};

class EvalAccumulator {
 public:
  // keep_scores: keep every sample's C scores (N x C floats) for AUC and thresholds.
  // expected_samples reserves that many up front, so add() does not allocate.
  explicit EvalAccumulator(int num_classes, bool keep_scores = true,
                           std::int64_t expected_samples = 0);

  // probabilities [B, C] f32 and labels [B] i32/i64, both on the CPU. Throws ruche::Error for a
  // label outside [0, C) or a NaN score.
  void add(const Tensor& probabilities, const Tensor& labels);
  // Adds another accumulator's samples (another rank's, gathered): counts add, scores append.
  void merge(const EvalAccumulator& other);
  void reset();
  // Every count as one vector (confusion matrix, samples, label ranks), for a communicator to sum
  // across ranks; set_totals puts the sums back, with every rank's scores and labels gathered.
  std::vector<std::int64_t> tallies() const;
  void set_totals(const std::vector<std::int64_t>& tallies, std::vector<float> scores,
                  std::vector<std::int32_t> labels);

  int num_classes() const { return confusion_.num_classes(); }
  std::int64_t samples() const { return samples_; }
  bool keeps_scores() const { return keep_scores_; }
  const ConfusionMatrix& confusion() const { return confusion_; }
  std::int64_t top1_correct() const { return confusion_.correct(); }
  // Samples whose label is among their k highest scores (ties as rank_of_label).
  std::int64_t top_k_correct(int k) const;
  const std::vector<float>& scores() const { return scores_; }         // [N, C] row-major
  const std::vector<std::int32_t>& labels() const { return labels_; }  // [N]

  // Scores of class c for every sample, and whether each sample is of class c: the binary
  // problem "c against the rest" (class 1 of a two-class model: roc_curve, choose_threshold).
  std::vector<float> class_scores(int c) const;
  std::vector<std::uint8_t> is_class(int c) const;

  // top_k: the k of EvalResult::top_k (NetParameter's eval_top_k).
  EvalResult result(const std::vector<int>& top_k = {}) const;

 private:
  bool keep_scores_;
  ConfusionMatrix confusion_;
  std::int64_t samples_ = 0;
  std::vector<std::int64_t> label_ranks_;  // [C]: how many samples' label ranked r-th
  std::vector<float> scores_;
  std::vector<std::int32_t> labels_;
};

}  // namespace ruche
