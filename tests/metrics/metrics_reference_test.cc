// Metrics against tests/ops/reference/ref_metrics.py (numpy, sklearn's definitions).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/metrics/eval_accumulator.h"
#include "engine/metrics/roc.h"
#include "tests/support/reference.h"

namespace ruche {
namespace {

using testing::reference;

std::vector<float> ref_floats(const std::string& c, const std::string& name) {
  return reference(c, name).to_vector<float>();
}

std::vector<std::int64_t> ref_ints(const std::string& c, const std::string& name) {
  return reference(c, name).to_vector<std::int64_t>();
}

// References are stored as float32: compare to float precision; NaN matches NaN.
void expect_near(double actual, float expected, const std::string& what) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << what << " = " << actual << ", expected NaN";
  } else {
    EXPECT_NEAR(actual, expected, 1e-6) << what;
  }
}

class MulticlassReference : public ::testing::TestWithParam<std::string> {};

TEST_P(MulticlassReference, EvalAccumulatorMatchesNumpy) {
  const std::string c = GetParam();
  const Tensor probs = reference(c, "probs");
  const Tensor labels = reference(c, "labels");
  const std::int64_t n = probs.size(0);
  const int classes = static_cast<int>(probs.size(1));
  EvalAccumulator acc(classes, true, n);
  for (std::int64_t start = 0; start < n; start += 64) {  // batches of 64, a short last one
    const std::int64_t len = std::min<std::int64_t>(64, n - start);
    acc.add(probs.narrow(0, start, len), labels.narrow(0, start, len));
  }
  const EvalResult r = acc.result();
  EXPECT_EQ(r.samples, n);
  EXPECT_EQ(r.confusion.counts(), ref_ints(c, "confusion"));
  expect_near(r.accuracy, ref_floats(c, "accuracy")[0], "accuracy");
  expect_near(r.accuracy, ref_floats(c, "top1")[0], "top1");
  ASSERT_TRUE(r.top5.has_value());
  expect_near(*r.top5, ref_floats(c, "top5")[0], "top5");
  const auto precision = ref_floats(c, "precision"), recall = ref_floats(c, "recall");
  const auto f1 = ref_floats(c, "f1"), auc = ref_floats(c, "auc");
  const auto support = ref_ints(c, "support");
  for (int k = 0; k < classes; ++k) {
    const ClassMetrics& m = r.report.per_class[k];
    const std::string at = " of class " + std::to_string(k);
    expect_near(m.precision, precision[k], "precision" + at);
    expect_near(m.recall, recall[k], "recall" + at);
    expect_near(m.f1, f1[k], "f1" + at);
    EXPECT_EQ(m.support, support[k]) << "support" + at;
    expect_near(r.auc->per_class[k], auc[k], "auc" + at);
  }
  const auto macro = ref_floats(c, "macro"), weighted = ref_floats(c, "weighted");
  expect_near(r.report.macro.precision, macro[0], "macro precision");
  expect_near(r.report.macro.recall, macro[1], "macro recall");
  expect_near(r.report.macro.f1, macro[2], "macro f1");
  expect_near(r.report.weighted.precision, weighted[0], "weighted precision");
  expect_near(r.report.weighted.recall, weighted[1], "weighted recall");
  expect_near(r.report.weighted.f1, weighted[2], "weighted f1");
  expect_near(r.auc->macro, ref_floats(c, "auc_macro")[0], "macro auc");
}

INSTANTIATE_TEST_SUITE_P(Cases, MulticlassReference,
                         ::testing::Values("metrics_multiclass", "metrics_absent_class"));

std::vector<std::uint8_t> positives(const std::string& c, const std::string& name) {
  std::vector<std::uint8_t> out;
  for (std::int64_t v : ref_ints(c, name)) out.push_back(v == 1);
  return out;
}

TEST(BinaryReference, CurveAucAndThresholdsMatchNumpy) {
  const std::string c = "metrics_binary";
  const auto score = ref_floats(c, "score"), score2 = ref_floats(c, "score2");
  const auto y = positives(c, "labels"), y2 = positives(c, "labels2");
  const auto curve = roc_curve(score, y);
  const auto fpr = ref_floats(c, "fpr"), tpr = ref_floats(c, "tpr");
  const auto thresholds = ref_floats(c, "thresholds");
  ASSERT_EQ(curve.size(), fpr.size());
  for (std::size_t i = 0; i < curve.size(); ++i) {
    expect_near(curve[i].fpr, fpr[i], "fpr " + std::to_string(i));
    expect_near(curve[i].tpr, tpr[i], "tpr " + std::to_string(i));
    EXPECT_EQ(curve[i].threshold, thresholds[i]) << i;
  }
  expect_near(roc_auc(score, y), ref_floats(c, "auc")[0], "auc");

  const ThresholdChoice by_recall = choose_threshold(score, y, ThresholdGoal::recall, 0.8);
  EXPECT_EQ(by_recall.threshold, ref_floats(c, "t_recall")[0]);
  const BinaryCounts on_recall = count_at_threshold(score2, y2, by_recall.threshold);
  EXPECT_EQ((std::vector<std::int64_t>{on_recall.tp, on_recall.fp, on_recall.tn, on_recall.fn}),
            ref_ints(c, "counts_recall"));

  const ThresholdChoice by_precision = choose_threshold(score, y, ThresholdGoal::precision, 0.7);
  EXPECT_EQ(by_precision.threshold, ref_floats(c, "t_precision")[0]);
  const BinaryCounts on_precision = count_at_threshold(score2, y2, by_precision.threshold);
  EXPECT_EQ((std::vector<std::int64_t>{on_precision.tp, on_precision.fp, on_precision.tn,
                                       on_precision.fn}),
            ref_ints(c, "counts_precision"));
}

}  // namespace
}  // namespace ruche
