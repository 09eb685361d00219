// Evaluating trained weights: what `ruche eval` and the end of `ruche train` share. Finding the
// net and solver a run used beside its weights (docs/ARCHITECTURE.md, The run directory), building
// the net for a dataset, evaluating one split into an EvalReport, printing it, and choosing a
// two-class decision threshold on the validation split (never on test: docs/ARCHITECTURE.md, Data).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/data/open.h"
#include "engine/data/transform.h"
#include "engine/graph/net.h"
#include "engine/metrics/eval_report.h"
#include "engine/metrics/regression.h"
#include "engine/metrics/roc.h"
#include "engine/proto/ruche.pb.h"
#include "engine/train/data_parallel.h"
#include "engine/train/task.h"
#include "engine/train/train_data.h"

namespace ruche {

// What a run directory holds beside weights RUN/model.npz (or RUN/best.npz, or any .npz there).
struct RunFiles {
  std::string weights;      // the weights file (exists)
  std::string run_dir;      // the directory holding weights and net.prototxt; "" when not a run
  std::string net_file;     // --net when given, else RUN/net.prototxt
  std::string solver_file;  // RUN/solver.prototxt; "" when there is none (defaults apply)
  // Where the run's preprocess.json is looked for: the run directory, else the weights' folder.
  std::string record_dir() const;
};

// Locates the files for `weights`. A missing weights file, or no net (no --net and no
// net.prototxt beside the weights), is a ruche::Error naming the paths looked at.
RunFiles locate_run_files(const std::string& weights, const std::string& net_override = "");

// One evaluated split: the accumulator keeps every sample's scores (for ROC and thresholds).
struct SplitEvaluation {
  SplitEvaluation(int classes, std::int64_t expected_samples)
      : acc(classes, true, expected_samples) {}
  EvalAccumulator acc;
  double loss = 0;    // mean negative log-likelihood of the true class
  EvalReport report;  // split, class names, result, extra {"loss"}
};

// Runs every sample of `data` through the net in test phase, in order, normalised by `norm` and
// never augmented, in batches of the net's input batch. With `ranks`, each rank evaluates its
// share and every rank ends with the totals (scores gathered in rank order).
SplitEvaluation evaluate_split(Net& net, const DatasetPtr& data, const std::string& split,
                               const Normalization& norm, DataParallel* ranks = nullptr);

// The printed form of a report: "<split> accuracy ..% (N samples), loss ..", top-5 and ROC AUC
// when present, the threshold section, the confusion matrix and the per-class table.
std::string render_eval_report(const EvalReport& report);

// The decision threshold for class 1 of a two-class evaluation, chosen on `chosen_on` (which
// must not be the test split) for `target` recall or precision, then counted on `evaluated_on`.
// A model with other than two classes is a ruche::Error.
ThresholdReport threshold_report(const SplitEvaluation& chosen_on,
                                 const SplitEvaluation& evaluated_on, ThresholdGoal goal,
                                 double target);

// One evaluated split of a regression or reconstruction net (engine/train/task.h).
struct RegressionEvaluation {
  std::string split;
  RegressionTally tally;             // keeps each sample's error (alone: in the split's order)
  std::vector<std::int32_t> labels;  // each sample's class, in order (alone only)
  double loss = 0;                   // mean loss per sample
  bool psnr = true;                  // reconstruction (images in [0, 1]); not for regression
  bool multilabel = false;           // SigmoidCrossEntropyLoss on a float y: accuracy at 0.5
};

// As evaluate_split, for a net whose target is the input (--reconstruct) or, for `task`
// regression, the data's float targets: every sample, never augmented or corrupted. With `ranks`,
// the sums over ranks (no per-sample errors).
RegressionEvaluation evaluate_reconstruction(Net& net, const DatasetPtr& data,
                                             const std::string& split, const Normalization& norm,
                                             DataParallel* ranks = nullptr,
                                             Task task = Task::reconstruction,
                                             bool multilabel = false);

// Anomaly detection by reconstruction error (`ruche eval --score reconstruction`): samples of
// classes outside `normal_classes` are the positives, each scored by its mean squared error.
struct AnomalyReport {
  std::vector<int> normal_classes;
  std::string split;
  std::int64_t anomalies = 0, normals = 0;
  double auc = 0;                            // ROC AUC of the errors, anomalous against normal
  std::optional<ThresholdReport> threshold;  // chosen on val, counted on `split`
};

// The AUC on `evaluated`; with a goal, the threshold chosen on `chosen_on` (never test).
AnomalyReport anomaly_report(const RegressionEvaluation& evaluated,
                             const std::vector<int>& normal_classes,
                             const RegressionEvaluation* chosen_on,
                             std::optional<ThresholdGoal> goal, double target);

// "test mse 0.0123  mae 0.0456  psnr 19.10 dB (10000 samples), loss 0.0123" and the anomaly
// section when there is one.
std::string render_regression_report(const RegressionEvaluation& e, const AnomalyReport* anomaly);
// The same as JSON (eval-<split>.json); `extra` adds numbers (the trainer's step).
void write_regression_report(const std::string& path, const RegressionEvaluation& e,
                             const AnomalyReport* anomaly,
                             const std::vector<std::pair<std::string, double>>& extra = {});

// `ruche eval`: weights evaluated on one split of a dataset, as the run that wrote them split it.
struct EvalRequest {
  std::string weights;
  std::string net;                    // --net; "" : RUN/net.prototxt beside the weights
  DataSpec data;                      // --data, --data-layout
  std::string split = "test";         // val or test
  int batch_size = 0;                 // 0: the run's solver batch_size
  std::optional<ThresholdGoal> goal;  // two classes: threshold chosen on val for this target
  double target = 0;
  std::string score;                // "reconstruction": anomaly detection (reconstruction runs)
  std::vector<int> normal_classes;  // empty: the run's train_classes
  int threads = 0;                  // CPU threads; 0: OMP_NUM_THREADS or all cores
};

struct EvalRunResult {
  RunFiles files;
  SplitEvaluation eval;  // eval.report carries the threshold section when one was asked for
  // A reconstruction run: its evaluation (then `eval` is empty), and the anomaly report when
  // --score reconstruction asked for one.
  std::optional<RegressionEvaluation> regression;
  std::optional<AnomalyReport> anomaly;
};

// Reads the run's solver (seed, val_fraction, batch size; defaults without RUN/solver.prototxt),
// opens the data split as training did, builds the net, loads the weights strictly and evaluates
// the requested split. Every user mistake is a one-line ruche::Error.
EvalRunResult evaluate_run(const EvalRequest& request);

}  // namespace ruche
