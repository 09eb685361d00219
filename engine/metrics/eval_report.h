// The eval-<split>.json report (docs/ARCHITECTURE.md, The run directory): accuracy, top-5, the
// per-class table, macro and weighted averages, ROC AUC, the confusion matrix, and the threshold
// section of a two-class evaluation.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/metrics/eval_accumulator.h"
#include "engine/metrics/roc.h"

namespace ruche {

// A threshold chosen on one split and evaluated on another (docs/ARCHITECTURE.md, Data: never
// chosen on the test split).
struct ThresholdReport {
  ThresholdChoice choice;
  std::string chosen_on;     // the split it was chosen on, e.g. "val"
  BinaryCounts evaluated;    // counts at choice.threshold on evaluated_on
  std::string evaluated_on;  // e.g. "test"
  int positive_class = 1;
};

struct EvalReport {
  std::string split;
  std::vector<std::string> class_names;  // may be empty: indices stand in
  EvalResult result;
  std::optional<ThresholdReport> threshold;
  std::vector<std::pair<std::string, double>> extra;  // e.g. {"loss", 0.31}, {"step", 12000}
};

std::string eval_report_json(const EvalReport& report);
// Writes the JSON (and a newline) to path + ".tmp", then renames it over path.
void write_eval_report(const std::string& path, const EvalReport& report);

}  // namespace ruche
