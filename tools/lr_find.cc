// ruche lr-find: the learning-rate range test (engine/train/lr_find.h) on a net and the training
// split of its data; writes OUT/lr_find.json, lr_find.csv and lr_find.png (matplotlib, through
// tools/scripts/plot_run.py) and prints the suggested learning rate.
#include "engine/train/lr_find.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/models/models.h"
#include "engine/proto/text_format.h"
#include "tools/commands.h"
#include "tools/flags.h"
#include "tools/python.h"

namespace ruche::tools {
namespace {

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  RUCHE_REQUIRE(out) << path.string() << ": cannot write";
  out << text;
  out.flush();
  RUCHE_REQUIRE(out.good()) << path.string() << ": write failed";
}

}  // namespace

void add_lr_find_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string model, net, solver, data, layout = "nchw", out = "lr-find", init_weights;
    std::string optimizer;
    DeviceFlags device;
    int threads = 0, batch_size = 0, seed = -1;
    double momentum = -1, weight_decay = -1;
    LrFindOptions find;
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand(
      "lr-find", "Learning-rate range test: loss against an exponentially growing lr");
  cmd->add_option("--model", o.model,
                  std::string("built-in model (default ") + kDefaultModel + ")");
  cmd->add_option("--net", o.net, "net.prototxt (instead of --model)");
  cmd->add_option("--solver", o.solver,
                  "solver.prototxt: optimizer, momentum, decay, batch size (its lr is ignored)");
  cmd->add_option("--data", o.data, std::string("dataset (default ") + kDefaultDataDir + ")");
  cmd->add_option("--data-layout", o.layout, "npz layout: nchw or nhwc")
      ->check(CLI::IsMember({"nchw", "nhwc"}));
  cmd->add_option("-o,--out", o.out, "directory for lr_find.json, .csv, .png")
      ->capture_default_str();
  cmd->add_option("--start-lr", o.find.start_lr, "first learning rate")->capture_default_str();
  cmd->add_option("--end-lr", o.find.end_lr, "last learning rate")->capture_default_str();
  cmd->add_option("--steps", o.find.steps, "steps from --start-lr to --end-lr")
      ->capture_default_str();
  cmd->add_option("--diverge", o.find.diverge_factor,
                  "stop when the smoothed loss passes this times its best")
      ->capture_default_str();
  cmd->add_option("--optimizer", o.optimizer, "sgd, adam, adamw, rmsprop, lars [solver: type]");
  cmd->add_option("--momentum", o.momentum, "[solver: momentum]");
  cmd->add_option("--weight-decay", o.weight_decay, "[solver: weight_decay]");
  cmd->add_option("--batch-size", o.batch_size, "[solver: batch_size]");
  cmd->add_option("--seed", o.seed, "[solver: random_seed]");
  cmd->add_option("--init-weights", o.init_weights, "start from these weights (.npz)");
  cmd->add_option("--threads", o.threads, "CPU threads (0: OMP_NUM_THREADS or all cores)");
  o.device.add_to(cmd);
  cmd->callback([&exit_code] {
    namespace fs = std::filesystem;
    RUCHE_REQUIRE(o.model.empty() || o.net.empty()) << "give --model or --net, not both";
    TrainRun run;
    if (!o.net.empty()) {
      run.net = load_net(o.net, &run.source);
    } else {
      run.model = o.model.empty() ? kDefaultModel : o.model;
      builtin_model(run.model, {});  // an unknown name fails before any data is read
    }
    run.solver = default_solver();
    if (!o.solver.empty()) load_prototxt(o.solver, run.solver);
    if (!o.optimizer.empty()) run.solver.set_type(o.optimizer);
    if (o.momentum >= 0) run.solver.set_momentum(static_cast<float>(o.momentum));
    if (o.weight_decay >= 0) run.solver.set_weight_decay(static_cast<float>(o.weight_decay));
    if (o.batch_size > 0) run.solver.set_batch_size(o.batch_size);
    if (o.seed >= 0) run.solver.set_random_seed(static_cast<std::uint64_t>(o.seed));
    run.data = DataSpec(o.data);
    run.data.layout = o.layout == "nhwc" ? DataLayout::nhwc : DataLayout::nchw;
    run.init_weights = o.init_weights;
    run.threads = o.threads;
    run.gpu_math = o.device.gpu_math();
    run.device = o.device.resolve();

    const LrFindResult result = lr_find(run, o.find);
    const fs::path out = o.out;
    fs::create_directories(out);
    write_text(out / "lr_find.json", lr_find_json(result, o.find) + "\n");
    write_text(out / "lr_find.csv", lr_find_csv(result));
    std::printf("%zu steps%s; lowest smoothed loss at lr %.3g\n", result.points.size(),
                result.diverged ? " (stopped: the loss diverged)" : "", result.min_loss_lr);
    std::printf("suggested lr %.3g (%s)\n", result.suggested_lr, result.suggested_by.c_str());
    std::printf("%s\n%s\n", (out / "lr_find.json").string().c_str(),
                (out / "lr_find.csv").string().c_str());
    exit_code = 0;
    try {  // the numbers are the result; the figure is a convenience
      const std::string python = find_plotting_python();
      exit_code =
          run_python(python, shipped_script("plot_run.py"),
                     {"lr-find", (out / "lr_find.json").string(), (out / "lr_find.png").string()});
    } catch (const Error& e) {
      std::fprintf(stderr, "ruche: warning: no lr_find.png: %s\n", e.what());
    }
  });
}

}  // namespace ruche::tools
