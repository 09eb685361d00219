#include "engine/metrics/roc.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <numeric>

#include "engine/error.h"

namespace ruche {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

void check_inputs(std::span<const float> scores, std::span<const std::uint8_t> positive,
                  const char* what) {
  RUCHE_REQUIRE(scores.size() == positive.size())
      << what << ": " << scores.size() << " scores but " << positive.size() << " labels";
  for (float s : scores) RUCHE_REQUIRE(!std::isnan(s)) << what << ": a score is NaN";
}

// Sample indices sorted by score, highest first.
std::vector<std::size_t> order_descending(std::span<const float> scores) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return order;
}

// Cumulative counts at each distinct score, highest first: predicted positive iff >= threshold.
struct SweepPoint {
  float threshold;
  std::int64_t tp, fp;
};

struct Sweep {
  std::vector<SweepPoint> points;
  std::int64_t positives = 0, negatives = 0;
};

Sweep sweep(std::span<const float> scores, std::span<const std::uint8_t> positive) {
  const std::vector<std::size_t> order = order_descending(scores);
  Sweep s;
  std::int64_t tp = 0, fp = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    (positive[order[i]] ? tp : fp) += 1;
    const bool last_of_score = i + 1 == order.size() || scores[order[i + 1]] != scores[order[i]];
    if (last_of_score) s.points.push_back({scores[order[i]], tp, fp});
  }
  s.positives = tp;
  s.negatives = fp;
  return s;
}

}  // namespace

double roc_auc(std::span<const float> scores, std::span<const std::uint8_t> positive) {
  check_inputs(scores, positive, "roc_auc");
  const std::vector<std::size_t> order = order_descending(scores);
  const auto n = static_cast<std::int64_t>(order.size());
  std::int64_t pos = 0;
  double rank_sum = 0;  // of the positives, ranks 1..n ascending by score, ties averaged
  for (std::int64_t i = 0; i < n;) {
    std::int64_t j = i;
    std::int64_t group_pos = 0;
    while (j < n && scores[order[j]] == scores[order[i]]) group_pos += positive[order[j++]] != 0;
    // Descending positions i..j-1 are ascending ranks n-j+1 .. n-i; their mean:
    const double average_rank = (static_cast<double>(n - j + 1) + static_cast<double>(n - i)) / 2;
    rank_sum += average_rank * static_cast<double>(group_pos);
    pos += group_pos;
    i = j;
  }
  const std::int64_t neg = n - pos;
  if (pos == 0 || neg == 0) return kNaN;
  const double u = rank_sum - static_cast<double>(pos) * static_cast<double>(pos + 1) / 2;
  return u / (static_cast<double>(pos) * static_cast<double>(neg));
}

AucSummary roc_auc_ovr(std::span<const float> scores, std::span<const std::int32_t> labels,
                       int classes) {
  RUCHE_REQUIRE(classes >= 1 && scores.size() == labels.size() * static_cast<std::size_t>(classes))
      << "roc_auc_ovr: " << scores.size() << " scores for " << labels.size() << " labels and "
      << classes << " classes";
  const std::size_t n = labels.size();
  std::vector<float> column(n);
  std::vector<std::uint8_t> is_class(n);
  AucSummary out;
  out.per_class.resize(classes);
  double sum = 0;
  int defined = 0;
  for (int c = 0; c < classes; ++c) {
    for (std::size_t i = 0; i < n; ++i) {
      column[i] = scores[i * classes + c];
      is_class[i] = labels[i] == c;
    }
    out.per_class[c] = roc_auc(column, is_class);
    if (std::isnan(out.per_class[c])) {
      out.excluded.push_back(c);
    } else {
      sum += out.per_class[c];
      ++defined;
    }
  }
  out.macro = defined ? sum / defined : kNaN;
  return out;
}

std::vector<RocPoint> roc_curve(std::span<const float> scores,
                                std::span<const std::uint8_t> positive) {
  check_inputs(scores, positive, "roc_curve");
  const Sweep s = sweep(scores, positive);
  RUCHE_REQUIRE(s.positives > 0 && s.negatives > 0)
      << "roc_curve: needs positive and negative samples, got " << s.positives << " and "
      << s.negatives;
  std::vector<RocPoint> curve;
  curve.reserve(s.points.size() + 1);
  curve.push_back({0.0, 0.0, std::numeric_limits<float>::infinity()});
  for (const SweepPoint& p : s.points) {
    curve.push_back({ratio(p.fp, s.negatives), ratio(p.tp, s.positives), p.threshold});
  }
  return curve;
}

void write_roc_csv(const std::string& path, const std::vector<RocPoint>& curve) {
  std::ofstream out(path);
  RUCHE_REQUIRE(out) << path << ": cannot write";
  out << "fpr,tpr,threshold\n";
  char line[96];
  for (const RocPoint& p : curve) {
    std::snprintf(line, sizeof line, "%.9g,%.9g,%.9g\n", p.fpr, p.tpr,
                  static_cast<double>(p.threshold));
    out << line;
  }
  RUCHE_REQUIRE(out.good()) << path << ": write failed";
}

const char* threshold_goal_name(ThresholdGoal goal) {
  return goal == ThresholdGoal::recall ? "recall" : "precision";
}

ThresholdChoice choose_threshold(std::span<const float> scores,
                                 std::span<const std::uint8_t> positive, ThresholdGoal goal,
                                 double target) {
  check_inputs(scores, positive, "choose_threshold");
  RUCHE_REQUIRE(target > 0 && target <= 1)
      << "threshold: target " << threshold_goal_name(goal) << " must be in (0, 1], got " << target;
  const Sweep s = sweep(scores, positive);
  RUCHE_REQUIRE(s.positives > 0) << "threshold: no positive sample to choose a threshold on";
  ThresholdChoice choice;
  choice.goal = goal;
  choice.target = target;
  choice.threshold = std::numeric_limits<float>::quiet_NaN();
  for (const SweepPoint& p : s.points) {  // thresholds from the highest down
    const double precision = ratio(p.tp, p.tp + p.fp), recall = ratio(p.tp, s.positives);
    const bool meets = goal == ThresholdGoal::recall ? recall >= target : precision >= target;
    if (!meets) continue;
    choice = {goal, target, true, p.threshold, precision, recall};
    if (goal == ThresholdGoal::recall) break;  // the largest; precision keeps going down
  }
  return choice;
}

double BinaryCounts::precision() const { return ratio(tp, tp + fp); }
double BinaryCounts::recall() const { return ratio(tp, tp + fn); }
double BinaryCounts::f1() const { return ratio(2 * tp, 2 * tp + fp + fn); }
double BinaryCounts::accuracy() const { return ratio(tp + tn, tp + tn + fp + fn); }

BinaryCounts count_at_threshold(std::span<const float> scores,
                                std::span<const std::uint8_t> positive, float threshold) {
  check_inputs(scores, positive, "count_at_threshold");
  BinaryCounts c;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const bool predicted = scores[i] >= threshold;
    if (positive[i]) {
      (predicted ? c.tp : c.fn) += 1;
    } else {
      (predicted ? c.fp : c.tn) += 1;
    }
  }
  return c;
}

}  // namespace ruche
