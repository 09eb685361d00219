// ROC analysis: exact one-vs-rest ROC AUC (Mann-Whitney, ties at average rank), the binary ROC
// curve, and choosing a decision threshold for a target recall or precision.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ruche {

// AUC of the samples flagged `positive` against the rest, from their scores: the Mann-Whitney
// U statistic over P*N, tied scores sharing their average rank (sklearn's roc_auc_score). NaN
// when there is no positive or no negative sample. Scores must not be NaN.
double roc_auc(std::span<const float> scores, std::span<const std::uint8_t> positive);

struct AucSummary {
  std::vector<double> per_class;  // NaN for a class absent from the labels (or the only one)
  double macro = 0;               // mean over the classes with a defined AUC
  std::vector<int> excluded;      // classes left out of the macro mean
};

// One-vs-rest AUC of every class: scores [n, classes] row-major, labels [n] in [0, classes).
AucSummary roc_auc_ovr(std::span<const float> scores, std::span<const std::int32_t> labels,
                       int classes);

struct RocPoint {
  double fpr = 0, tpr = 0;
  float threshold = 0;  // predicted positive iff score >= threshold; +inf for the first point
};

// The ROC curve: (0, 0) at +inf, then one point per distinct score, highest first (every
// point, none dropped as collinear). Throws ruche::Error without both kinds of sample.
std::vector<RocPoint> roc_curve(std::span<const float> scores,
                                std::span<const std::uint8_t> positive);
// Writes the curve as CSV with a header: fpr,tpr,threshold.
void write_roc_csv(const std::string& path, const std::vector<RocPoint>& curve);

enum class ThresholdGoal { recall, precision };
const char* threshold_goal_name(ThresholdGoal goal);

struct ThresholdChoice {
  ThresholdGoal goal = ThresholdGoal::recall;
  double target = 0;
  bool met = false;  // false: no threshold reaches the target (threshold is then NaN)
  float threshold = 0;
  double precision = 0, recall = 0;  // at the threshold, on the samples it was chosen on
};

// For goal recall: the largest threshold whose recall is >= target. For goal precision: the
// smallest threshold whose precision is >= target (the most recall at that precision).
// Candidate thresholds are the distinct scores; target in (0, 1]. Throws ruche::Error when
// there is no positive sample.
ThresholdChoice choose_threshold(std::span<const float> scores,
                                 std::span<const std::uint8_t> positive, ThresholdGoal goal,
                                 double target);

struct BinaryCounts {
  std::int64_t tp = 0, fp = 0, tn = 0, fn = 0;
  double precision() const;  // 0 when nothing is predicted positive
  double recall() const;     // 0 when there is no positive
  double f1() const;
  double accuracy() const;
};

// The confusion counts of "positive iff score >= threshold" (on another split, typically).
BinaryCounts count_at_threshold(std::span<const float> scores,
                                std::span<const std::uint8_t> positive, float threshold);

}  // namespace ruche
