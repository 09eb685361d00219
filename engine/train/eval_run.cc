#include "engine/train/eval_run.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>

#include "engine/data/loader.h"
#include "engine/metrics/classification.h"
#include "engine/proto/text_format.h"
#include "engine/train/discipline.h"
#include "engine/train/evaluate.h"
#include "engine/train/task.h"
#include "engine/train/trainer.h"
#include "engine/train/weights.h"
#include "ops/ops.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

std::string format(const char* fmt, double a, double b = 0, double c = 0, double d = 0) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, fmt, a, b, c, d);
  return buffer;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < 6; ++i)
    out.append(i ? ", " : "").append(names[i]);
  if (names.size() > 6)
    out.append(", ... (").append(std::to_string(names.size())).append(" in all)");
  return out;
}

// Loads the weights strictly, with an error that names both files.
void load_strictly(Net& net, const RunFiles& files) {
  const LoadReport r = load_weights(net, files.weights, true);
  if (r.missing.empty() && r.unexpected.empty() && r.mismatched.empty()) return;
  std::string what = files.weights;
  what.append(": does not match the net of ").append(files.net_file);
  if (!r.missing.empty()) what.append("; missing: ").append(join(r.missing));
  if (!r.unexpected.empty()) what.append("; unexpected: ").append(join(r.unexpected));
  if (!r.mismatched.empty()) what.append("; shape mismatch: ").append(join(r.mismatched));
  RUCHE_FAIL() << what;
}

std::string render_threshold(const ThresholdReport& t, const std::vector<std::string>& names) {
  const char* goal = threshold_goal_name(t.choice.goal);
  std::string out = "threshold for class " + class_name(names, t.positive_class) + ": ";
  if (!t.choice.met) {
    out.append("no threshold reaches ").append(goal).append(" >= ");
    out.append(format("%g", t.choice.target)).append(" on ").append(t.chosen_on).append("\n");
    return out;
  }
  out.append(format("%.6g", t.choice.threshold)).append(", chosen on ").append(t.chosen_on);
  out.append(" for ").append(goal).append(format(" >= %g (there precision %.4f, recall %.4f)\n",
                                                 t.choice.target, t.choice.precision,
                                                 t.choice.recall));
  const BinaryCounts& c = t.evaluated;
  out.append("  on ").append(t.evaluated_on);
  out.append(format(": precision %.4f  recall %.4f  f1 %.4f  accuracy %.4f", c.precision(),
                    c.recall(), c.f1(), c.accuracy()));
  out.append("  (tp " + std::to_string(c.tp) + ", fp " + std::to_string(c.fp) + ", tn " +
             std::to_string(c.tn) + ", fn " + std::to_string(c.fn) + ")\n");
  return out;
}

}  // namespace

std::string RunFiles::record_dir() const {
  if (!run_dir.empty()) return run_dir;
  const fs::path dir = fs::path(weights).parent_path();
  return dir.empty() ? "." : dir.string();
}

RunFiles locate_run_files(const std::string& weights, const std::string& net_override) {
  RUCHE_REQUIRE(!weights.empty()) << "no weights given (--weights W.npz)";
  RunFiles f;
  f.weights = weights;
  if (fs::is_directory(weights)) f.weights = (fs::path(weights) / "model.npz").string();
  RUCHE_REQUIRE(fs::is_regular_file(f.weights)) << f.weights << ": no such weights file";
  fs::path dir = fs::path(f.weights).parent_path();
  if (dir.empty()) dir = ".";
  const fs::path beside = dir / "net.prototxt";
  if (fs::is_regular_file(beside)) f.run_dir = dir.string();
  if (!net_override.empty()) {
    RUCHE_REQUIRE(fs::is_regular_file(net_override))
        << net_override << ": no such net file (--net)";
    f.net_file = net_override;
  } else {
    RUCHE_REQUIRE(!f.run_dir.empty()) << f.weights << ": no net beside the weights (looked for "
                                      << beside.string() << "); give --net NET.prototxt";
    f.net_file = beside.string();
  }
  if (!f.run_dir.empty() && fs::is_regular_file(dir / "solver.prototxt")) {
    f.solver_file = (dir / "solver.prototxt").string();
  }
  return f;
}

SplitEvaluation evaluate_split(Net& net, const DatasetPtr& data, const std::string& split,
                               const Normalization& norm, DataParallel* ranks) {
  LoaderOptions options;
  options.batch_size = net.input().size(0);
  options.drop_last = false;
  options.transform.norm = norm;
  options.transform.augment.enabled = false;
  SamplerOptions in_order;
  in_order.shuffle = false;
  in_order.pad = false;  // every sample once, over all ranks
  const int rank = ranks ? ranks->rank() : 0, size = ranks ? ranks->size() : 1;
  BatchLoader loader(data, DistributedSampler(data->size(), rank, size, in_order), options);
  const int classes = static_cast<int>(probability_classes(net));
  // A deploy net's output is not checked against the data by a loss: say so before it counts.
  RUCHE_REQUIRE(net.has_loss() || classes >= data->num_classes())
      << "the net's output scores " << classes << " classes; the data has " << data->num_classes();
  SplitEvaluation e(classes, data->size());
  e.loss = evaluate(net, loader, e.acc);
  if (ranks) {
    double nll_sum = e.loss * static_cast<double>(e.acc.samples());
    ranks->reduce_evaluation(e.acc, nll_sum);
    e.loss = e.acc.samples() ? nll_sum / static_cast<double>(e.acc.samples()) : 0;
  }
  e.report.split = split;
  e.report.class_names = data->class_names();
  const auto& top_k = net.param().eval_top_k();
  e.report.result = e.acc.result({top_k.begin(), top_k.end()});
  e.report.extra = {{"loss", e.loss}};
  return e;
}

RegressionEvaluation evaluate_reconstruction(Net& net, const DatasetPtr& data,
                                             const std::string& split, const Normalization& norm,
                                             DataParallel* ranks, Task task, bool multilabel) {
  LoaderOptions options;
  options.batch_size = net.input().size(0);
  options.drop_last = false;
  options.transform.norm = norm;
  options.transform.augment.enabled = false;
  options.target_is_input = task == Task::reconstruction;  // else the data's float targets
  SamplerOptions in_order;
  in_order.shuffle = false;
  in_order.pad = false;
  const int rank = ranks ? ranks->rank() : 0, size = ranks ? ranks->size() : 1;
  BatchLoader loader(data, DistributedSampler(data->size(), rank, size, in_order), options);
  RegressionEvaluation e;
  e.split = split;
  e.psnr = task == Task::reconstruction;
  e.multilabel = multilabel;
  e.tally.keep_errors = size == 1;
  e.loss = evaluate_regression(net, loader, e.tally);
  if (ranks) {
    double loss_sum = e.loss * static_cast<double>(e.tally.samples);
    ranks->reduce_evaluation(e.tally, loss_sum);
    e.loss = e.tally.samples ? loss_sum / static_cast<double>(e.tally.samples) : 0;
  }
  if (size == 1) {  // alone, in order: sample i is the dataset's i
    for (std::int64_t i = 0; i < data->size(); ++i) e.labels.push_back(data->label(i));
  }
  return e;
}

AnomalyReport anomaly_report(const RegressionEvaluation& evaluated,
                             const std::vector<int>& normal_classes,
                             const RegressionEvaluation* chosen_on,
                             std::optional<ThresholdGoal> goal, double target) {
  auto anomalous = [&](const RegressionEvaluation& e) {
    RUCHE_CHECK(e.labels.size() == e.tally.errors.size()) << "per-sample errors and labels";
    std::vector<std::uint8_t> positive;
    for (const std::int32_t y : e.labels) {
      positive.push_back(std::find(normal_classes.begin(), normal_classes.end(), y) ==
                         normal_classes.end());
    }
    return positive;
  };
  AnomalyReport r;
  r.normal_classes = normal_classes;
  r.split = evaluated.split;
  const std::vector<std::uint8_t> positive = anomalous(evaluated);
  r.anomalies = std::count(positive.begin(), positive.end(), std::uint8_t{1});
  r.normals = static_cast<std::int64_t>(positive.size()) - r.anomalies;
  RUCHE_REQUIRE(r.anomalies > 0 && r.normals > 0)
      << "--score reconstruction: the " << evaluated.split << " split has " << r.anomalies
      << " anomalous and " << r.normals << " normal samples; the ROC needs both";
  r.auc = roc_auc(evaluated.tally.errors, positive);
  if (goal && chosen_on) {
    RUCHE_CHECK(chosen_on->split != "test") << "a threshold is never chosen on the test split";
    ThresholdReport t;
    t.choice = choose_threshold(chosen_on->tally.errors, anomalous(*chosen_on), *goal, target);
    t.chosen_on = chosen_on->split;
    t.evaluated_on = evaluated.split;
    if (t.choice.met) {
      t.evaluated = count_at_threshold(evaluated.tally.errors, positive, t.choice.threshold);
    }
    r.threshold = t;
  }
  return r;
}

std::string render_regression_report(const RegressionEvaluation& e, const AnomalyReport* a) {
  const RegressionTally& t = e.tally;
  std::string out = e.split;
  out.append(format(" mse %.6g  mae %.6g", t.mse(), t.mae()));
  if (e.psnr) out.append(format("  psnr %.2f dB", t.psnr()));
  if (e.multilabel)
    out.append(format("  accuracy at 0.5 %.2f%% (per element)", 100 * t.accuracy()));
  out.append(" (" + std::to_string(t.samples) + " samples)");
  out.append(format(", loss %.6g\n", e.loss));
  if (!a) return out;
  std::string normal;
  for (const int c : a->normal_classes)
    normal.append(normal.empty() ? "" : ",").append(std::to_string(c));
  out.append("anomaly detection by reconstruction error (normal classes " + normal + "): ");
  out.append(format("ROC AUC %.4f (%.0f anomalous, %.0f normal)\n", a->auc,
                    static_cast<double>(a->anomalies), static_cast<double>(a->normals)));
  if (a->threshold) {
    ThresholdReport t = *a->threshold;
    std::string line = render_threshold(t, {});
    // The positives are the anomalies, not a class.
    const std::string head = "threshold for class 1: ";
    if (line.rfind(head, 0) == 0) line = "threshold on the error: " + line.substr(head.size());
    out.append(line);
  }
  return out;
}

void write_regression_report(const std::string& path, const RegressionEvaluation& e,
                             const AnomalyReport* a,
                             const std::vector<std::pair<std::string, double>>& extra) {
  std::ofstream f(path);
  RUCHE_REQUIRE(f) << path << ": cannot write";
  const RegressionTally& t = e.tally;
  f << std::setprecision(9) << "{\"split\": \"" << e.split << "\", \"samples\": " << t.samples
    << ", \"loss\": " << e.loss << ", \"mse\": " << t.mse() << ", \"mae\": " << t.mae();
  if (e.psnr) f << ", \"psnr\": " << t.psnr();
  if (e.multilabel) f << ", \"acc\": " << t.accuracy();
  for (const auto& [name, value] : extra) f << ", \"" << name << "\": " << value;
  if (a) {
    f << ", \"anomaly\": {\"normal_classes\": [";
    for (std::size_t i = 0; i < a->normal_classes.size(); ++i) {
      f << (i ? ", " : "") << a->normal_classes[i];
    }
    f << "], \"anomalies\": " << a->anomalies << ", \"normals\": " << a->normals
      << ", \"roc_auc\": " << a->auc;
    if (a->threshold && a->threshold->choice.met) {
      const ThresholdReport& th = *a->threshold;
      f << ", \"threshold\": {\"value\": " << th.choice.threshold << ", \"chosen_on\": \""
        << th.chosen_on << "\", \"goal\": \"" << threshold_goal_name(th.choice.goal)
        << "\", \"target\": " << th.choice.target << ", \"evaluated_on\": \"" << th.evaluated_on
        << "\", \"tp\": " << th.evaluated.tp << ", \"fp\": " << th.evaluated.fp
        << ", \"tn\": " << th.evaluated.tn << ", \"fn\": " << th.evaluated.fn << "}";
    }
    f << "}";
  }
  f << "}\n";
}

std::string render_eval_report(const EvalReport& report) {
  const EvalResult& r = report.result;
  std::string out = report.split;
  out.append(format(" accuracy %.2f%%", 100 * r.accuracy));
  out.append(" (" + std::to_string(r.samples) + " samples)");
  for (const auto& [name, value] : report.extra) {
    if (name == "loss") out.append(format(", loss %.4f", value));
  }
  out.append("\n");
  if (r.top5) out.append(format("top-5 accuracy %.2f%%\n", 100 * *r.top5));
  for (const auto& [k, accuracy] : r.top_k) {
    out.append(format("top-%.0f accuracy %.2f%%\n", k, 100 * accuracy));
  }
  if (r.auc) {
    out.append(format("ROC AUC (one-vs-rest): macro %.4f", r.auc->macro));
    if (r.num_classes <= 20) {
      out.append(";");
      for (int c = 0; c < r.num_classes; ++c) {
        const double auc = r.auc->per_class[static_cast<std::size_t>(c)];
        out.append(" ").append(class_name(report.class_names, c)).append(" ");
        out.append(std::isnan(auc) ? std::string("n/a") : format("%.4f", auc));
      }
    }
    out.append("\n");
  }
  if (report.threshold) out.append(render_threshold(*report.threshold, report.class_names));
  out.append("\n").append(r.confusion.render(report.class_names)).append("\n");
  out.append(render_classification_report(r.report, report.class_names));
  return out;
}

ThresholdReport threshold_report(const SplitEvaluation& chosen_on,
                                 const SplitEvaluation& evaluated_on, ThresholdGoal goal,
                                 double target) {
  RUCHE_REQUIRE(chosen_on.acc.num_classes() == 2)
      << "--target-" << threshold_goal_name(goal) << " needs a two-class model; this one has "
      << chosen_on.acc.num_classes() << " classes";
  RUCHE_CHECK(chosen_on.report.split != "test") << "a threshold is never chosen on the test split";
  ThresholdReport t;
  t.positive_class = 1;
  t.choice =
      choose_threshold(chosen_on.acc.class_scores(1), chosen_on.acc.is_class(1), goal, target);
  t.chosen_on = chosen_on.report.split;
  t.evaluated_on = evaluated_on.report.split;
  if (t.choice.met) {
    t.evaluated = count_at_threshold(evaluated_on.acc.class_scores(1), evaluated_on.acc.is_class(1),
                                     t.choice.threshold);
  }
  return t;
}

EvalRunResult evaluate_run(const EvalRequest& request) {
  RUCHE_REQUIRE(request.split == "val" || request.split == "test")
      << "--split " << request.split << ": expected val or test";
  RUCHE_REQUIRE(request.batch_size >= 0)
      << "--batch-size " << request.batch_size << ": expected a positive number";
  if (request.goal) {
    RUCHE_REQUIRE(request.target > 0 && request.target <= 1)
        << "--target-" << threshold_goal_name(*request.goal) << " " << request.target
        << ": expected a value in (0, 1]";
  }
  const RunFiles files = locate_run_files(request.weights, request.net);
  proto::SolverParameter solver = default_solver();
  if (!files.solver_file.empty()) {
    solver.Clear();
    load_prototxt(files.solver_file, solver);
  }
  NetSource source;
  const proto::NetParameter net_param = load_net(files.net_file, &source);
  ops::set_num_threads(request.threads);

  // The splits exactly as the run made them (same seed, same val_fraction), normalised as its
  // record says; a run from before records gets what --normalize auto gave it.
  const PreprocessSource recorded = PreprocessSource::in_dir(files.record_dir());
  DataSpec data_spec = request.data;
  data_spec.ignore_label = ignore_label_of(net_param);
  NormalizedSplits opened =
      open_normalized_splits(data_spec, solver.val_fraction(), solver.random_seed(), recorded);
  const DataSplits& splits = opened.splits;
  const Normalization& norm = opened.norm;
  const DatasetPtr& data = request.split == "val" ? splits.val : splits.test;
  if (!data && request.split == "val") {
    RUCHE_FAIL() << "--split val: the run held out no validation data (val_fraction "
                 << solver.val_fraction() << ")";
  }
  RUCHE_REQUIRE(data) << "--split test: the data (" << splits.train->kind()
                      << ") has no test split; use --split val";
  if (request.goal) {
    check_threshold_avoids_test(std::string("--target-") + threshold_goal_name(*request.goal),
                                splits.val != nullptr);
  }

  const Task task = task_of(net_param, solver, splits.train->target_shape().ndim() > 0);
  RUCHE_REQUIRE(request.score.empty() || request.score == "reconstruction")
      << "--score " << request.score << ": expected reconstruction";
  RUCHE_REQUIRE(request.score.empty() || task == Task::reconstruction)
      << "--score reconstruction scores by reconstruction error; " << files.net_file << " is a "
      << task_name(task) << " net (train an autoencoder with --reconstruct)";
  NetOptions options;
  options.batch_size = request.batch_size > 0 ? request.batch_size : solver.batch_size();
  options.sample_shape = splits.train->sample_shape();
  options.num_classes = splits.train->num_classes();
  if (task == Task::reconstruction) options.target_shape = options.sample_shape;
  if (task == Task::regression) options.target_shape = splits.train->target_shape();
  options.source = source;
  std::unique_ptr<Net> net = Net::build(net_param, options);
  load_strictly(*net, files);
  if (task == Task::regression) {
    RUCHE_REQUIRE(!request.goal) << "--target-" << threshold_goal_name(*request.goal)
                                 << " chooses a two-class threshold; " << files.net_file
                                 << " is a regression net";
    EvalRunResult r{files, SplitEvaluation(splits.train->num_classes(), 0), std::nullopt,
                    std::nullopt};
    r.eval.report.split = request.split;
    r.regression = evaluate_reconstruction(*net, data, request.split, norm, nullptr, task,
                                           is_multilabel(task, net_param));
    return r;
  }
  if (task == Task::reconstruction) {
    EvalRunResult r{files, SplitEvaluation(splits.train->num_classes(), 0), std::nullopt,
                    std::nullopt};
    r.eval.report.split = request.split;
    r.regression = evaluate_reconstruction(*net, data, request.split, norm);
    if (!request.score.empty()) {
      std::vector<int> normal = request.normal_classes;
      if (normal.empty() && !solver.train_classes().empty()) {
        normal = parse_class_list(solver.train_classes(), "train_classes");
      }
      RUCHE_REQUIRE(!normal.empty())
          << "--score reconstruction: which classes are normal? Give --normal-classes 0,2,3 "
          << "(the run trained on every class: no --train-classes)";
      std::optional<RegressionEvaluation> val;
      if (request.goal) {
        val = request.split == "val" ? *r.regression
                                     : evaluate_reconstruction(*net, splits.val, "val", norm);
      }
      r.anomaly = anomaly_report(*r.regression, normal, val ? &*val : nullptr, request.goal,
                                 request.target);
    } else {
      RUCHE_REQUIRE(!request.goal)
          << "--target-" << threshold_goal_name(*request.goal) << " on a reconstruction net "
          << "chooses the anomaly threshold: give --score reconstruction";
    }
    return r;
  }
  if (request.goal) {
    RUCHE_REQUIRE(splits.train->num_classes() == 2)
        << "--target-" << threshold_goal_name(*request.goal)
        << " needs a two-class model; this one has " << splits.train->num_classes() << " classes";
  }
  SplitEvaluation eval = evaluate_split(*net, data, request.split, norm);
  if (request.goal) {
    const SplitEvaluation val =
        request.split == "val" ? eval : evaluate_split(*net, splits.val, "val", norm);
    eval.report.threshold = threshold_report(val, eval, *request.goal, request.target);
  }
  return EvalRunResult{files, std::move(eval), std::nullopt, std::nullopt};
}

}  // namespace ruche
