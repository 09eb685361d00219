// `ruche compare`: runs (architectures, solvers) side by side. Each RUN is a run directory
// (metrics.jsonl) or a directory of seeds (RUN/seed-1/, ... as `ruche train --seeds N` writes
// them): one configuration, its numbers as mean and spread over the seeds, and Welch's t-test at
// 95% on the best validation accuracy says which configurations the seeds cannot tell apart.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/metrics/welch.h"

namespace ruche {

// One line of metrics.jsonl: its numbers by key (null: NaN) and its split.
struct MetricsRecord {
  std::string split;
  std::map<std::string, double> values;
  double get(const std::string& key) const;  // NaN when absent
};
// A flat JSON object of numbers, strings, true/false and null; `where` names it in errors.
MetricsRecord parse_metrics_line(const std::string& line, const std::string& where);

// What compare reads of one run directory. NaN where the run has no such number.
struct RunSummary {
  std::string dir;
  double params = std::nan("");  // trainable parameters, counted in RUN/model.npz or best.npz
  double best_val_acc = std::nan(""), best_val_loss = std::nan("");  // the best val record's
  double test_acc = std::nan("");        // the test record's (measured once, at the end)
  double epochs_to_best = std::nan("");  // epochs trained when the best val accuracy came
  double epochs = std::nan("");          // epochs trained
  double wall_s = std::nan("");          // training time (the last record's time_s)
  double img_per_s = std::nan("");       // the median of the train records' img_per_s
};
RunSummary summarize_run(const std::string& dir);

struct ConfigSummary {
  std::string name;  // the RUN argument's last component
  std::string dir;
  std::vector<RunSummary> runs;                                 // one, or one per seed
  bool seeded = false;                                          // a directory of seed-N runs
  std::vector<double> values(double RunSummary::*field) const;  // the finite ones
};
// RUN with metrics.jsonl: one run; else RUN/seed-*/ with metrics.jsonl (sorted by N). Anything
// else is a ruche::Error naming RUN.
ConfigSummary summarize_config(const std::string& dir);

struct Comparison {
  std::vector<ConfigSummary> configs;
  struct Pair {
    std::size_t a, b;
    WelchResult test;  // on the best validation accuracies of their seeds
  };
  std::vector<Pair> pairs;  // every two configurations with 2 or more seeds each
};
Comparison compare_runs(const std::vector<std::string>& dirs);

// The table and the t-test lines.
std::string render_comparison(const Comparison& c);
// The same as JSON (DIR/compare.json): configs with runs and their numbers, pairs.
std::string comparison_json(const Comparison& c);

}  // namespace ruche
