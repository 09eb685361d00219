#include "engine/metrics/classification.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "ops/step_tallies.h"

namespace ruche {
namespace {

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

}  // namespace

int rank_of_label(const float* scores, int classes, int label) {
  const float s = scores[label];
  int rank = 0;
  for (int c = 0; c < classes; ++c) {
    // cppcheck-suppress arrayIndexThenCheck ; c < label orders ties, it checks no bound
    rank += scores[c] > s || (scores[c] == s && c < label);
  }
  return rank;
}

int argmax(const float* scores, int classes) { return ops::argmax_row(scores, classes); }

std::int64_t label_at(const Tensor& labels, std::int64_t i) {
  if (labels.dtype() == DType::i64) return labels.data<std::int64_t>()[i];
  RUCHE_REQUIRE(labels.dtype() == DType::i32)
      << "metrics: labels must be i32 or i64, got " << labels.str();
  return labels.data<std::int32_t>()[i];
}

double top_k_accuracy(const Tensor& scores_in, const Tensor& labels_in, int k) {
  RUCHE_REQUIRE(scores_in.ndim() == 2 && labels_in.ndim() == 1 &&
                labels_in.size(0) == scores_in.size(0))
      << "top_k_accuracy: scores [N, C] and labels [N], got " << scores_in.str() << " and "
      << labels_in.str();
  RUCHE_REQUIRE(k >= 1) << "top_k_accuracy: k = " << k;
  const Tensor scores = scores_in.contiguous().to(Device::cpu());
  const Tensor labels = labels_in.contiguous().to(Device::cpu());
  const std::int64_t n = scores.size(0);
  const int classes = static_cast<int>(scores.size(1));
  const float* s = scores.data<float>();
  std::int64_t hits = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t y = label_at(labels, i);
    RUCHE_REQUIRE(y >= 0 && y < classes)
        << "top_k_accuracy: label " << y << " outside [0, " << classes << ")";
    hits += rank_of_label(s + i * classes, classes, static_cast<int>(y)) < k;
  }
  return ratio(hits, n);
}

ClassificationReport classification_report(const ConfusionMatrix& cm) {
  const int classes = cm.num_classes();
  ClassificationReport r;
  r.per_class.resize(classes);
  r.total = cm.total();
  r.accuracy = ratio(cm.correct(), r.total);
  for (int c = 0; c < classes; ++c) {
    const std::int64_t tp = cm.at(c, c);
    const std::int64_t support = cm.support(c), predicted = cm.predicted(c);
    ClassMetrics& m = r.per_class[c];
    m.support = support;
    m.precision = ratio(tp, predicted);
    m.recall = ratio(tp, support);
    m.f1 = ratio(2 * tp, support + predicted);  // 2TP / (2TP + FP + FN)
    if (support > 0 || predicted > 0) {
      ++r.macro_classes;
      r.macro.precision += m.precision;
      r.macro.recall += m.recall;
      r.macro.f1 += m.f1;
    }
    const double w = ratio(support, r.total);
    r.weighted.precision += w * m.precision;
    r.weighted.recall += w * m.recall;
    r.weighted.f1 += w * m.f1;
  }
  if (r.macro_classes > 0) {
    r.macro.precision /= r.macro_classes;
    r.macro.recall /= r.macro_classes;
    r.macro.f1 /= r.macro_classes;
  }
  return r;
}

std::string render_classification_report(const ClassificationReport& r,
                                         const std::vector<std::string>& class_names,
                                         int max_name_width) {
  std::size_t width = 12;  // "weighted avg"
  std::vector<std::string> names(r.per_class.size());
  for (std::size_t c = 0; c < names.size(); ++c) {
    names[c] = truncate_name(class_name(class_names, static_cast<int>(c)), max_name_width);
    width = std::max(width, names[c].size());
  }
  std::ostringstream out;
  char buf[128];
  auto line = [&](const std::string& name, double p, double rc, double f, std::int64_t n) {
    std::snprintf(buf, sizeof buf, "  %9.4f  %9.4f  %9.4f  %9lld\n", p, rc, f,
                  static_cast<long long>(n));
    out << name << std::string(width - name.size(), ' ') << buf;
  };
  std::snprintf(buf, sizeof buf, "  %9s  %9s  %9s  %9s\n", "precision", "recall", "f1", "support");
  out << std::string(width, ' ') << buf;
  for (std::size_t c = 0; c < names.size(); ++c) {
    const ClassMetrics& m = r.per_class[c];
    line(names[c], m.precision, m.recall, m.f1, m.support);
  }
  out << '\n';
  line("macro avg", r.macro.precision, r.macro.recall, r.macro.f1, r.total);
  line("weighted avg", r.weighted.precision, r.weighted.recall, r.weighted.f1, r.total);
  std::snprintf(buf, sizeof buf, "  %9s  %9s  %9.4f  %9lld\n", "", "", r.accuracy,
                static_cast<long long>(r.total));
  out << "accuracy" << std::string(width - 8, ' ') << buf;
  return out.str();
}

}  // namespace ruche
