// Hand-checked metrics: confusion matrix and its table, precision/recall/F1, top-k, AUC with
// ties, the ROC curve and threshold choice on constructed cases, the JSON report.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/metrics/classification.h"
#include "engine/metrics/confusion_matrix.h"
#include "engine/metrics/eval_accumulator.h"
#include "engine/metrics/eval_report.h"
#include "engine/metrics/json_writer.h"
#include "engine/metrics/roc.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;

ConfusionMatrix three_classes() {
  ConfusionMatrix cm(3);
  const std::int64_t counts[3][3] = {{5, 1, 0}, {0, 7, 2}, {1, 0, 10}};
  for (int t = 0; t < 3; ++t) {
    for (int p = 0; p < 3; ++p) cm.add(t, p, counts[t][p]);
  }
  return cm;
}

TEST(ConfusionMatrix, CountsRowsTrueColumnsPredicted) {
  ConfusionMatrix cm(3);
  cm.add(0, 1);
  cm.add(0, 1);
  cm.add(2, 2);
  EXPECT_EQ(cm.at(0, 1), 2);
  EXPECT_EQ(cm.at(1, 0), 0);
  EXPECT_EQ(cm.counts(), (std::vector<std::int64_t>{0, 2, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(cm.total(), 3);
  EXPECT_EQ(cm.correct(), 1);
  EXPECT_EQ(cm.support(0), 2);
  EXPECT_EQ(cm.predicted(1), 2);
  EXPECT_NE(error_of([&] { cm.add(3, 0); }).find("label 3 outside [0, 3)"), std::string::npos);
}

TEST(ConfusionMatrix, MergeAddsCountsAndResetClears) {
  ConfusionMatrix a = three_classes(), b = three_classes();
  a.merge(b);
  EXPECT_EQ(a.at(1, 2), 4);
  EXPECT_EQ(a.total(), 52);
  a.reset();
  EXPECT_EQ(a.total(), 0);
  EXPECT_EQ(a.counts().size(), 9u);
}

TEST(ConfusionMatrix, RendersAFixedWidthTableWithCutNames) {
  const std::string table = three_classes().render({"cat", "dog", "a_very_long_class_name"}, 8);
  EXPECT_EQ(table,
            "true \\ pred       cat       dog  a_very..\n"
            "cat                 5         1         0\n"
            "dog                 0         7         2\n"
            "a_very..            1         0        10\n");
  // No names: indices.
  EXPECT_EQ(ConfusionMatrix(2).render(),
            "true \\ pred  0  1\n"
            "0            0  0\n"
            "1            0  0\n");
}

TEST(Classification, PrecisionRecallF1FromTheMatrix) {
  const ClassificationReport r = classification_report(three_classes());
  ASSERT_EQ(r.per_class.size(), 3u);
  EXPECT_DOUBLE_EQ(r.per_class[0].precision, 5.0 / 6);
  EXPECT_DOUBLE_EQ(r.per_class[0].recall, 5.0 / 6);
  EXPECT_DOUBLE_EQ(r.per_class[1].precision, 7.0 / 8);
  EXPECT_DOUBLE_EQ(r.per_class[1].recall, 7.0 / 9);
  EXPECT_DOUBLE_EQ(r.per_class[1].f1, 14.0 / 17);
  EXPECT_DOUBLE_EQ(r.per_class[2].precision, 10.0 / 12);
  EXPECT_DOUBLE_EQ(r.per_class[2].recall, 10.0 / 11);
  EXPECT_DOUBLE_EQ(r.per_class[2].f1, 20.0 / 23);
  EXPECT_EQ(r.per_class[2].support, 11);
  EXPECT_DOUBLE_EQ(r.accuracy, 22.0 / 26);
  EXPECT_EQ(r.macro_classes, 3);
  EXPECT_DOUBLE_EQ(r.macro.recall, (5.0 / 6 + 7.0 / 9 + 10.0 / 11) / 3);
  EXPECT_DOUBLE_EQ(r.weighted.recall, 22.0 / 26);  // support-weighted recall is accuracy
  EXPECT_DOUBLE_EQ(r.weighted.precision, (6 * 5.0 / 6 + 9 * 7.0 / 8 + 11 * 10.0 / 12) / 26);
}

TEST(Classification, ZeroDivisionGivesZeroAndUnseenClassesLeaveTheMacro) {
  ConfusionMatrix cm(4);
  cm.add(0, 0, 3);
  cm.add(0, 1, 1);  // class 1: predicted, never true
  cm.add(2, 0, 2);  // class 2: true, never predicted; class 3: neither
  const ClassificationReport r = classification_report(cm);
  EXPECT_EQ(r.per_class[1].precision, 0);
  EXPECT_EQ(r.per_class[1].recall, 0);
  EXPECT_EQ(r.per_class[2].precision, 0);
  EXPECT_EQ(r.per_class[2].f1, 0);
  EXPECT_EQ(r.per_class[3].support, 0);
  EXPECT_EQ(r.macro_classes, 3);
  EXPECT_DOUBLE_EQ(r.macro.precision, (3.0 / 5) / 3);
  EXPECT_DOUBLE_EQ(r.macro.recall, (3.0 / 4) / 3);
}

TEST(Classification, RenderedReportHasOneLinePerClass) {
  const std::string text =
      render_classification_report(classification_report(three_classes()), {"cat", "dog"});
  EXPECT_NE(text.find("precision"), std::string::npos);
  EXPECT_NE(text.find("dog              0.8750     0.7778     0.8235          9"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\n2 "), std::string::npos) << text;  // unnamed class by index
  EXPECT_NE(text.find("macro avg"), std::string::npos);
  EXPECT_NE(text.find("accuracy                               0.8462         26"),
            std::string::npos)
      << text;
}

TEST(Classification, TopKTiesGoToTheLowerClassIndex) {
  const Tensor scores =
      Tensor::from_vector({0.1f, 0.5f, 0.4f, 0.3f, 0.3f, 0.4f, 0.2f, 0.2f, 0.6f}, {3, 3});
  const Tensor labels = Tensor::from_vector<std::int64_t>({2, 1, 0}, {3});
  EXPECT_DOUBLE_EQ(top_k_accuracy(scores, labels, 1), 0);
  EXPECT_DOUBLE_EQ(top_k_accuracy(scores, labels, 2), 2.0 / 3);
  EXPECT_DOUBLE_EQ(top_k_accuracy(scores, labels, 3), 1);
  const float tied[] = {0.3f, 0.3f, 0.4f, 0.4f};
  EXPECT_EQ(argmax(tied, 4), 2);
  EXPECT_EQ(rank_of_label(tied, 4, 2), 0);
  EXPECT_EQ(rank_of_label(tied, 4, 3), 1);
  EXPECT_EQ(rank_of_label(tied, 4, 1), 3);
  const Tensor i32 = Tensor::from_vector<std::int32_t>({2, 1, 3}, {3});
  EXPECT_NE(error_of([&] { top_k_accuracy(scores, i32, 1); }).find("label 3"), std::string::npos);
}

TEST(Roc, AucMatchesHandCountsWithTies) {
  const std::vector<std::uint8_t> y = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f}, y), 0.75);
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f}, y), 0.5);
  // pos {0.5, 0.9} vs neg {0.2, 0.5}: 1 + 0.5 + 1 + 1 of 4 pairs.
  EXPECT_DOUBLE_EQ(
      roc_auc(std::vector<float>{0.2f, 0.5f, 0.5f, 0.9f}, std::vector<std::uint8_t>{0, 1, 0, 1}),
      0.875);
  EXPECT_TRUE(std::isnan(roc_auc(std::vector<float>{0.2f, 0.3f}, std::vector<std::uint8_t>{0, 0})));
}

TEST(Roc, OneVsRestLeavesAbsentClassesOutOfTheMacro) {
  // Three classes, class 2 never a label.
  const std::vector<float> scores = {0.8f, 0.1f, 0.1f, 0.3f, 0.6f, 0.1f,
                                     0.6f, 0.3f, 0.1f, 0.2f, 0.2f, 0.6f};
  const std::vector<std::int32_t> labels = {0, 1, 1, 0};
  const AucSummary auc = roc_auc_ovr(scores, labels, 3);
  // class 0: pos {0.8, 0.2} neg {0.3, 0.6}: 2 of 4. class 1: pos {0.6, 0.3} neg {0.1, 0.2}: 4/4.
  EXPECT_DOUBLE_EQ(auc.per_class[0], 0.5);
  EXPECT_DOUBLE_EQ(auc.per_class[1], 1.0);
  EXPECT_TRUE(std::isnan(auc.per_class[2]));
  EXPECT_EQ(auc.excluded, (std::vector<int>{2}));
  EXPECT_DOUBLE_EQ(auc.macro, 0.75);
}

TEST(Roc, CurveHasOnePointPerDistinctScoreAndWritesCsv) {
  const auto curve = roc_curve(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f, 0.4f},
                               std::vector<std::uint8_t>{0, 0, 1, 1, 1});
  ASSERT_EQ(curve.size(), 5u);
  EXPECT_TRUE(std::isinf(curve[0].threshold));
  const double fpr[] = {0, 0, 0.5, 0.5, 1}, tpr[] = {0, 1.0 / 3, 2.0 / 3, 1, 1};
  const float thr[] = {0, 0.8f, 0.4f, 0.35f, 0.1f};
  for (int i = 0; i < 5; ++i) {
    EXPECT_DOUBLE_EQ(curve[i].fpr, fpr[i]) << i;
    EXPECT_DOUBLE_EQ(curve[i].tpr, tpr[i]) << i;
    if (i) {
      EXPECT_EQ(curve[i].threshold, thr[i]) << i;
    }
  }
  const auto path = std::filesystem::temp_directory_path() / "ruche_metrics_roc.csv";
  write_roc_csv(path.string(), curve);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().substr(0, 47), "fpr,tpr,threshold\n0,0,inf\n0,0.333333333,0.80000");
  std::filesystem::remove(path);
  EXPECT_NE(error_of([] {
              roc_curve(std::vector<float>{0.1f}, std::vector<std::uint8_t>{1});
            }).find("positive and negative"),
            std::string::npos);
}

// Scores high to low; positives at 0.9, 0.8, 0.6, 0.4 (P = 4).
const std::vector<float> kScores = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f, 0.3f, 0.2f};
const std::vector<std::uint8_t> kPositive = {1, 1, 0, 1, 0, 1, 0, 0};

TEST(Threshold, LargestThresholdMeetingARecallTarget) {
  ThresholdChoice c = choose_threshold(kScores, kPositive, ThresholdGoal::recall, 0.75);
  EXPECT_TRUE(c.met);
  EXPECT_EQ(c.threshold, 0.6f);
  EXPECT_DOUBLE_EQ(c.precision, 0.75);
  EXPECT_DOUBLE_EQ(c.recall, 0.75);
  EXPECT_EQ(choose_threshold(kScores, kPositive, ThresholdGoal::recall, 1.0).threshold, 0.4f);
  EXPECT_EQ(choose_threshold(kScores, kPositive, ThresholdGoal::recall, 0.1).threshold, 0.9f);
}

TEST(Threshold, SmallestThresholdMeetingAPrecisionTarget) {
  auto at = [](double target) {
    return choose_threshold(kScores, kPositive, ThresholdGoal::precision, target).threshold;
  };
  EXPECT_EQ(at(1.0), 0.8f);
  EXPECT_EQ(at(0.75), 0.6f);
  EXPECT_EQ(at(0.7), 0.6f);
  EXPECT_EQ(at(0.65), 0.4f);  // precision is not monotone: 0.5 has 0.6, 0.4 has 2/3
  const ThresholdChoice none =
      choose_threshold(std::vector<float>{0.9f, 0.1f}, std::vector<std::uint8_t>{0, 1},
                       ThresholdGoal::precision, 0.9);
  EXPECT_FALSE(none.met);
  EXPECT_TRUE(std::isnan(none.threshold));
  EXPECT_NE(error_of([] {
              choose_threshold(kScores, kPositive, ThresholdGoal::recall, 1.5);
            }).find("(0, 1]"),
            std::string::npos);
}

TEST(Threshold, ChosenOnOneSplitEvaluatedOnAnother) {
  const ThresholdChoice c = choose_threshold(kScores, kPositive, ThresholdGoal::recall, 0.75);
  const BinaryCounts b = count_at_threshold(std::vector<float>{0.65f, 0.55f, 0.61f, 0.1f},
                                            std::vector<std::uint8_t>{1, 1, 0, 0}, c.threshold);
  EXPECT_EQ(b.tp, 1);
  EXPECT_EQ(b.fp, 1);
  EXPECT_EQ(b.tn, 1);
  EXPECT_EQ(b.fn, 1);
  EXPECT_DOUBLE_EQ(b.precision(), 0.5);
  EXPECT_DOUBLE_EQ(b.recall(), 0.5);
  EXPECT_DOUBLE_EQ(b.accuracy(), 0.5);
  EXPECT_EQ(BinaryCounts{}.precision(), 0);
}

TEST(Json, EscapesStringsAndWritesNaNAsNull) {
  EXPECT_EQ(json_quote("a\"b\\c\n\x01 é"), "\"a\\\"b\\\\c\\n\\u0001 é\"");
  JsonWriter j;
  j.begin_object().key("x").value(0.5).key("n").value(std::nan("")).key("a").begin_array();
  j.value(1).value("s").value(true).end_array().end_object();
  EXPECT_EQ(j.str(), "{\"x\":0.5,\"n\":null,\"a\":[1,\"s\",true]}");
}

TEST(EvalAccumulator, BatchesMergesAndReservedCapacity) {
  const std::vector<float> probs = {0.7f, 0.2f, 0.1f, 0.2f, 0.5f, 0.3f,
                                    0.1f, 0.1f, 0.8f, 0.6f, 0.3f, 0.1f};
  const std::vector<std::int32_t> labels = {0, 2, 2, 1};
  EvalAccumulator whole(3, true, 4);
  const std::size_t capacity = whole.scores().capacity();
  whole.add(Tensor::from_vector(probs, {4, 3}), Tensor::from_vector(labels, {4}));
  EXPECT_EQ(whole.scores().capacity(), capacity);  // reserved: no growth
  EvalAccumulator a(3), b(3);
  a.add(Tensor::from_vector(std::vector<float>(probs.begin(), probs.begin() + 6), {2, 3}),
        Tensor::from_vector<std::int32_t>({0, 2}, {2}));
  b.add(Tensor::from_vector(std::vector<float>(probs.begin() + 6, probs.end()), {2, 3}),
        Tensor::from_vector<std::int64_t>({2, 1}, {2}));
  a.merge(b);
  EXPECT_EQ(a.confusion().counts(), whole.confusion().counts());
  EXPECT_EQ(a.scores(), whole.scores());
  EXPECT_EQ(a.labels(), whole.labels());
  const EvalResult r = a.result();
  EXPECT_EQ(r.samples, 4);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);  // 0 -> 0 right, 2 -> 1 wrong, 2 -> 2 right, 1 -> 0 wrong
  EXPECT_FALSE(r.top5.has_value());
  ASSERT_TRUE(r.auc.has_value());
  EXPECT_EQ(r.auc->excluded, (std::vector<int>{}));
  EXPECT_NE(error_of([&] {
              a.add(Tensor::from_vector({0.5f, 0.5f, 0.0f}, {1, 3}),
                    Tensor::from_vector<std::int32_t>({3}, {1}));
            }).find("label 3"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              a.add(Tensor::from_vector({0.5f, NAN, 0.0f}, {1, 3}),
                    Tensor::from_vector<std::int32_t>({0}, {1}));
            }).find("NaN"),
            std::string::npos);
}

// Labels ranked 0, 1, 2, 3 and 7 among 8 scores: top-k for the k a net asks (eval_top_k), from
// counts that survive tallies() and set_totals() (the cross-rank sum), and "top<k>" in the JSON.
TEST(EvalAccumulator, TopKForTheAskedK) {
  std::vector<float> probs;
  for (int i = 0; i < 5; ++i) {
    for (int c = 0; c < 8; ++c) probs.push_back(static_cast<float>(8 - c) / 36.0f);
  }
  const std::vector<std::int32_t> labels = {0, 1, 2, 3, 7};
  EvalAccumulator acc(8, false);
  acc.add(Tensor::from_vector(probs, {5, 8}), Tensor::from_vector(labels, {5}));
  EXPECT_EQ(acc.top_k_correct(1), 1);
  EXPECT_EQ(acc.top_k_correct(3), 3);
  EXPECT_EQ(acc.top_k_correct(8), 5);
  EXPECT_EQ(acc.top_k_correct(20), 5);
  EvalAccumulator summed(8, false);
  summed.set_totals(acc.tallies(), {}, {});
  const EvalResult r = summed.result({2, 3});
  ASSERT_TRUE(r.top5.has_value());
  EXPECT_DOUBLE_EQ(*r.top5, 0.8);
  EXPECT_EQ(r.top_k, (std::vector<std::pair<int, double>>{{2, 0.4}, {3, 0.6}}));
  const std::string json = eval_report_json({"val", {}, r, std::nullopt, {}});
  EXPECT_NE(json.find("\"top2\":0.4"), std::string::npos) << json;
  EXPECT_NE(json.find("\"top3\":0.6"), std::string::npos) << json;
}

TEST(EvalReport, JsonHasEverySectionAndPythonReadsIt) {
  EvalAccumulator acc(2);
  acc.add(Tensor::from_vector({0.9f, 0.1f, 0.4f, 0.6f, 0.3f, 0.7f, 0.8f, 0.2f}, {4, 2}),
          Tensor::from_vector<std::int32_t>({0, 1, 0, 1}, {4}));
  EvalReport report{"test", {"ok", "de\"fect"}, acc.result(), std::nullopt, {{"loss", 0.25}}};
  ThresholdReport t;
  t.choice = choose_threshold(acc.class_scores(1), acc.is_class(1), ThresholdGoal::recall, 1.0);
  t.chosen_on = "val";
  t.evaluated = count_at_threshold(acc.class_scores(1), acc.is_class(1), t.choice.threshold);
  t.evaluated_on = "test";
  report.threshold = t;
  const std::string json = eval_report_json(report);
  for (const char* part :
       {"\"split\":\"test\"", "\"loss\":0.25", "\"accuracy\":0.5", "\"top5\":null",
        "\"name\":\"de\\\"fect\"", "\"counts\":[[1,1],[1,1]]", "\"goal\":\"recall\"",
        "\"threshold\":0.2", "\"auc\":0.5", "\"evaluated_on\":{\"split\":\"test\""}) {
    EXPECT_NE(json.find(part), std::string::npos) << part << " in " << json;
  }
  const auto path = std::filesystem::temp_directory_path() / "ruche_eval-test.json";
  write_eval_report(path.string(), report);
  const char* python = std::getenv("RUCHE_PYTHON");
  ASSERT_NE(python, nullptr) << "RUCHE_PYTHON is not set: run the tests through ctest";
  const std::string command = std::string(python) +
                              " -c \"import json,sys; d=json.load(open(sys.argv[1])); "
                              "assert d['per_class'][1]['support'] == 2\" " +
                              path.string();
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ruche
