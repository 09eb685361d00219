#include "engine/metrics/eval_report.h"

#include <cmath>
#include <cstdio>
#include <fstream>

#include "engine/metrics/json_writer.h"

namespace ruche {
namespace {

void write_averages(JsonWriter& j, const AveragedMetrics& m) {
  j.key("precision").value(m.precision);
  j.key("recall").value(m.recall);
  j.key("f1").value(m.f1);
}

void write_per_class(JsonWriter& j, const EvalReport& r) {
  const EvalResult& e = r.result;
  j.key("per_class").begin_array();
  for (int c = 0; c < e.num_classes; ++c) {
    const ClassMetrics& m = e.report.per_class[c];
    j.begin_object();
    j.key("class").value(c);
    j.key("name").value(class_name(r.class_names, c));
    j.key("precision").value(m.precision);
    j.key("recall").value(m.recall);
    j.key("f1").value(m.f1);
    j.key("support").value(m.support);
    if (e.auc) j.key("auc").value(e.auc->per_class[c]);
    j.end_object();
  }
  j.end_array();
}

void write_auc(JsonWriter& j, const AucSummary& auc) {
  j.key("auc").begin_object();
  j.key("macro").value(auc.macro);
  j.key("method").value("one-vs-rest, exact (Mann-Whitney, ties at average rank)");
  j.key("excluded_classes").begin_array();
  for (int c : auc.excluded) j.value(c);
  j.end_array();
  if (!auc.excluded.empty()) {
    j.key("note").value(std::to_string(auc.excluded.size()) +
                        " class(es) without both positive and negative samples have no AUC "
                        "(null) and are left out of the macro mean");
  }
  j.end_object();
}

void write_confusion(JsonWriter& j, const ConfusionMatrix& cm) {
  j.key("confusion_matrix").begin_object();
  j.key("rows").value("true");
  j.key("cols").value("predicted");
  j.key("counts").begin_array();
  for (int t = 0; t < cm.num_classes(); ++t) {
    j.begin_array();
    for (int p = 0; p < cm.num_classes(); ++p) j.value(cm.at(t, p));
    j.end_array();
  }
  j.end_array();
  j.end_object();
}

void write_threshold(JsonWriter& j, const ThresholdReport& t) {
  const BinaryCounts& c = t.evaluated;
  j.key("threshold").begin_object();
  j.key("positive_class").value(t.positive_class);
  j.key("goal").value(threshold_goal_name(t.choice.goal));
  j.key("target").value(t.choice.target);
  j.key("met").value(t.choice.met);
  j.key("threshold").value(t.choice.threshold);  // a float: written as one
  j.key("chosen_on").begin_object();
  j.key("split").value(t.chosen_on);
  j.key("precision").value(t.choice.precision);
  j.key("recall").value(t.choice.recall);
  j.end_object();
  j.key("evaluated_on").begin_object();
  j.key("split").value(t.evaluated_on);
  j.key("precision").value(c.precision());
  j.key("recall").value(c.recall());
  j.key("f1").value(c.f1());
  j.key("accuracy").value(c.accuracy());
  j.key("tp").value(c.tp);
  j.key("fp").value(c.fp);
  j.key("tn").value(c.tn);
  j.key("fn").value(c.fn);
  j.end_object();
  j.end_object();
}

}  // namespace

std::string eval_report_json(const EvalReport& r) {
  const EvalResult& e = r.result;
  JsonWriter j;
  j.begin_object();
  j.key("split").value(r.split);
  j.key("samples").value(e.samples);
  j.key("num_classes").value(e.num_classes);
  for (const auto& [name, v] : r.extra) j.key(name).value(v);
  j.key("accuracy").value(e.accuracy);
  if (e.top5) {
    j.key("top5").value(*e.top5);
  } else {
    j.key("top5").null();
  }
  for (const auto& [k, accuracy] : e.top_k) j.key("top" + std::to_string(k)).value(accuracy);
  write_per_class(j, r);
  j.key("macro").begin_object();
  write_averages(j, e.report.macro);
  if (e.auc) j.key("auc").value(e.auc->macro);
  j.key("classes").value(e.report.macro_classes);
  j.end_object();
  j.key("weighted").begin_object();
  write_averages(j, e.report.weighted);
  j.end_object();
  if (e.auc) write_auc(j, *e.auc);
  write_confusion(j, e.confusion);
  if (r.threshold) write_threshold(j, *r.threshold);
  j.end_object();
  return j.str();
}

void write_eval_report(const std::string& path, const EvalReport& report) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    RUCHE_REQUIRE(out) << tmp << ": cannot write";
    out << eval_report_json(report) << '\n';
    out.flush();
    RUCHE_REQUIRE(out.good()) << tmp << ": write failed";
  }
  RUCHE_REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0)
      << path << ": cannot rename " << tmp << " over it";
}

}  // namespace ruche
