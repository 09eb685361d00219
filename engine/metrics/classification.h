// Classification metrics: top-k accuracy from scores, and per-class precision / recall / F1
// from a confusion matrix, with sklearn's conventions (zero_division=0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/metrics/confusion_matrix.h"
#include "engine/tensor/tensor.h"

namespace ruche {

// The position of class `label` when the `classes` scores of one sample are ranked from the
// highest: classes scoring higher, plus classes scoring the same with a lower index (so rank 0
// is exactly "argmax == label", argmax taking the first maximum). Top-k is correct iff rank < k.
int rank_of_label(const float* scores, int classes, int label);
// The predicted class: the first index of the largest score.
int argmax(const float* scores, int classes);

// The fraction of samples whose label is among their k highest scores: scores [N, C] (logits
// or probabilities, f32, CPU), labels [N] (i32 or i64). Ties as rank_of_label.
double top_k_accuracy(const Tensor& scores, const Tensor& labels, int k);

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  std::int64_t support = 0;  // samples of this true class
};

struct AveragedMetrics {
  double precision = 0, recall = 0, f1 = 0;
};

struct ClassificationReport {
  std::vector<ClassMetrics> per_class;
  // Unweighted mean over the classes that occur in the labels or the predictions (as sklearn
  // without an explicit label list); macro_classes says how many that was.
  AveragedMetrics macro;
  int macro_classes = 0;
  AveragedMetrics weighted;  // weighted by support
  double accuracy = 0;
  std::int64_t total = 0;
};

// Precision TP/(TP+FP), recall TP/(TP+FN), F1 2TP/(2TP+FP+FN); 0 where the denominator is 0.
ClassificationReport classification_report(const ConfusionMatrix& cm);

// The report as a fixed-width table (class, precision, recall, f1, support; then macro and
// weighted averages and accuracy), names cut to max_name_width.
std::string render_classification_report(const ClassificationReport& report,
                                         const std::vector<std::string>& class_names = {},
                                         int max_name_width = 20);

// Element i of labels (i32 or i64, CPU, contiguous); throws for any other dtype.
std::int64_t label_at(const Tensor& labels, std::int64_t i);

}  // namespace ruche
