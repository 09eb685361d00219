// ruche eval: trained weights on the val or test split, as the run that wrote them split its
// data; prints and writes the evaluation report (engine/train/eval_run.h does the work).
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "engine/train/eval_run.h"
#include "engine/train/task.h"
#include "tools/commands.h"

namespace ruche::tools {

void add_eval_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string weights, net, data, layout = "nchw", split = "test", json, roc, score;
    std::string normal_classes;
    int batch_size = 0, threads = 0;
    double target_recall = 0, target_precision = 0;
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate trained weights on the val or test split");
  cmd->add_option("--weights", o.weights, "RUN/model.npz, RUN/best.npz (or a run directory)")
      ->required();
  cmd->add_option("--net", o.net, "net.prototxt (default: the one beside the weights)");
  cmd->add_option("--data", o.data, std::string("dataset (default ") + kDefaultDataDir + ")");
  cmd->add_option("--data-layout", o.layout, "npz layout: nchw or nhwc")
      ->check(CLI::IsMember({"nchw", "nhwc"}));
  cmd->add_option("--split", o.split, "val (held out as in training) or test")
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "default: the run's solver batch_size");
  cmd->add_option("--json", o.json, "also write the JSON report here");
  cmd->add_option("--roc", o.roc, "two classes: write the ROC curve of class 1 (CSV)");
  auto* recall = cmd->add_option("--target-recall", o.target_recall,
                                 "two classes: choose the threshold on val for this recall");
  auto* precision = cmd->add_option("--target-precision", o.target_precision,
                                    "two classes: choose the threshold on val for this precision");
  recall->excludes(precision);
  cmd->add_option("--score", o.score,
                  "reconstruction: anomaly detection by an autoencoder's reconstruction error "
                  "(ROC AUC; with --target-recall, a threshold chosen on val)")
      ->check(CLI::IsMember({"reconstruction"}));
  cmd->add_option("--normal-classes", o.normal_classes,
                  "--score reconstruction: the normal classes, 0,2,3,... (default: the run's "
                  "--train-classes)");
  cmd->add_option("--threads", o.threads, "CPU threads (0: OMP_NUM_THREADS or all cores)");
  cmd->callback([&exit_code, recall, precision] {
    EvalRequest request;
    request.weights = o.weights;
    request.net = o.net;
    request.data = DataSpec(o.data);
    request.data.layout = o.layout == "nhwc" ? DataLayout::nhwc : DataLayout::nchw;
    request.split = o.split;
    request.batch_size = o.batch_size;
    request.threads = o.threads;
    request.score = o.score;
    if (!o.normal_classes.empty()) {
      request.normal_classes = parse_class_list(o.normal_classes, "--normal-classes");
    }
    if (recall->count()) {
      request.goal = ThresholdGoal::recall;
      request.target = o.target_recall;
    } else if (precision->count()) {
      request.goal = ThresholdGoal::precision;
      request.target = o.target_precision;
    }
    const EvalRunResult r = evaluate_run(request);
    if (r.regression) {  // an autoencoder: errors, and the anomaly report when asked for
      RUCHE_REQUIRE(o.roc.empty()) << "--roc: a reconstruction net has no class scores";
      const AnomalyReport* anomaly = r.anomaly ? &*r.anomaly : nullptr;
      std::printf("weights %s, net %s\n%s", r.files.weights.c_str(), r.files.net_file.c_str(),
                  render_regression_report(*r.regression, anomaly).c_str());
      if (!o.json.empty()) write_regression_report(o.json, *r.regression, anomaly);
      if (!r.files.run_dir.empty()) {
        const auto path = std::filesystem::path(r.files.run_dir) / ("eval-" + o.split + ".json");
        write_regression_report(path.string(), *r.regression, anomaly);
        std::printf("report written to %s\n", path.string().c_str());
      }
      exit_code = 0;
      return;
    }
    const EvalReport& report = r.eval.report;
    std::vector<RocPoint> curve;
    // Two classes: the run directory keeps the ROC curve beside the report (ruche plot draws it).
    // (A split holding one class has no curve: none is written.)
    const auto positive =
        report.result.num_classes == 2 ? r.eval.acc.is_class(1) : std::vector<std::uint8_t>{};
    const auto positives = std::count(positive.begin(), positive.end(), std::uint8_t{1});
    const bool run_roc = !r.files.run_dir.empty() && positives > 0 &&
                         positives < static_cast<std::int64_t>(positive.size());
    if (run_roc) curve = roc_curve(r.eval.acc.class_scores(1), positive);
    if (!o.roc.empty()) {
      RUCHE_REQUIRE(report.result.num_classes == 2)
          << "--roc needs a two-class model; this one has " << report.result.num_classes
          << " classes";
      if (!run_roc) curve = roc_curve(r.eval.acc.class_scores(1), r.eval.acc.is_class(1));
    }
    std::printf("weights %s, net %s\n%s", r.files.weights.c_str(), r.files.net_file.c_str(),
                render_eval_report(report).c_str());
    if (!o.json.empty()) write_eval_report(o.json, report);
    if (!r.files.run_dir.empty()) {
      const auto path = std::filesystem::path(r.files.run_dir) / ("eval-" + o.split + ".json");
      write_eval_report(path.string(), report);
      std::printf("report written to %s\n", path.string().c_str());
      if (run_roc) {
        const auto roc = std::filesystem::path(r.files.run_dir) / ("roc-" + o.split + ".csv");
        write_roc_csv(roc.string(), curve);
      }
    }
    if (!o.roc.empty()) {
      write_roc_csv(o.roc, curve);
      std::printf("ROC curve (%zu points) written to %s\n", curve.size(), o.roc.c_str());
    }
    exit_code = 0;
  });
}

}  // namespace ruche::tools
