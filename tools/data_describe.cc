// ruche data: look at a data set before training on it. `ruche data describe --data SPEC [-o DIR]`
// prints what engine/data/describe.h measures and, with -o, writes DIR/describe.json,
// DIR/samples.png (a grid of training samples per class) and, when duplicates were found,
// DIR/duplicates.png (example pairs), drawn by matplotlib through tools/scripts/figures.py, as
// `ruche plot` draws. `ruche data bench` times the shard loader.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/data/describe.h"
#include "engine/error.h"
#include "engine/tensor/npz.h"
#include "tools/commands.h"
#include "tools/python.h"

namespace ruche::tools {

void add_data_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string data, val_data, layout = "nchw", out;
    DescribeOptions describe;
  };
  static Options o;
  CLI::App* data = app.add_subcommand("data", "Look at a data set: describe it, time its loader");
  data->require_subcommand(1);
  CLI::App* cmd = data->add_subcommand(
      "describe",
      "Splits, class counts and imbalance, per-channel statistics, value range, a "
      "grid of samples per class, and duplicates across and within splits");
  cmd->add_option("--data", o.data,
                  "what ruche train reads: IDX or CIFAR directory, FILE.npz, ImageFolder root, "
                  ".tar shards (default: Debian's Fashion-MNIST)");
  cmd->add_option("--val-data", o.val_data, "validation shards (with .tar shards)");
  cmd->add_option("--data-layout", o.layout, "npz images: nchw or nhwc")->capture_default_str();
  cmd->add_option("--val-fraction", o.describe.val_fraction,
                  "of train held out for validation, as ruche train does where the data has no "
                  "validation split")
      ->capture_default_str();
  cmd->add_option("--seed", o.describe.seed, "the run's seed: the same held-out split")
      ->capture_default_str();
  cmd->add_option("--near-threshold", o.describe.near_threshold,
                  "near duplicates: 256-bit dHash (17 x 16 cells) within this Hamming distance")
      ->capture_default_str();
  cmd->add_option("--samples-per-class", o.describe.samples_per_class,
                  "training samples per class in the grid")
      ->capture_default_str();
  cmd->add_option("--max-pairs", o.describe.max_pairs,
                  "skip a near-duplicate check that would compare more pairs (said)")
      ->capture_default_str();
  cmd->add_option("-o,--out", o.out,
                  "write DIR/describe.json, DIR/samples.png and (duplicates found) "
                  "DIR/duplicates.png");
  cmd->callback([&exit_code] {
    namespace fs = std::filesystem;
    RUCHE_REQUIRE(o.layout == "nchw" || o.layout == "nhwc")
        << "--data-layout " << o.layout << ": expected nchw or nhwc";
    RUCHE_REQUIRE(o.describe.near_threshold >= 0 && o.describe.near_threshold < 64)
        << "--near-threshold " << o.describe.near_threshold << ": expected 0 to 63";
    RUCHE_REQUIRE(o.describe.samples_per_class >= 0) << "--samples-per-class must be >= 0";
    RUCHE_REQUIRE(o.describe.val_fraction >= 0 && o.describe.val_fraction < 1)
        << "--val-fraction " << o.describe.val_fraction << ": expected [0, 1)";
    DataSpec spec(o.data);
    spec.val_data = o.val_data;
    spec.layout = o.layout == "nhwc" ? DataLayout::nhwc : DataLayout::nchw;
    // Checked before the data is read: a missing matplotlib is said at once.
    const std::string python = o.out.empty() ? "" : find_plotting_python();
    const DataDescription d = describe_data(spec, o.describe);
    std::fputs(render_description(d).c_str(), stdout);
    exit_code = 0;
    if (o.out.empty()) return;
    const fs::path dir(o.out);
    fs::create_directories(dir);
    const std::string json = (dir / "describe.json").string();
    {
      std::ofstream f(json);
      f << description_json(d);
      RUCHE_REQUIRE(f.good()) << json << ": cannot write";
    }
    std::printf("wrote %s\n", json.c_str());
    if (d.grid_labels.empty()) return;
    const std::string npz = (dir / "samples.npz").string();
    std::vector<std::int32_t> labels = d.grid_labels;
    std::vector<std::pair<std::string, Tensor>> arrays{
        {"x", d.grid},
        {"y", Tensor::from_vector(labels, Shape{static_cast<std::int64_t>(labels.size())})}};
    if (!d.pair_check.empty()) {  // duplicates.png
      arrays.emplace_back("pair_a", d.pair_a);
      arrays.emplace_back("pair_b", d.pair_b);
      std::vector<std::int32_t> check = d.pair_check;
      const Shape n{static_cast<std::int64_t>(check.size())};
      arrays.emplace_back("pair_check", Tensor::from_vector(check, n));
    }
    save_npz(npz, arrays);
    const int code = run_python(
        python, shipped_script("figures.py"),
        {"grid", npz, json, (dir / "samples.png").string(), d.pixels ? "pixels" : "values"});
    fs::remove(npz);
    RUCHE_REQUIRE(code == 0 || code == 2) << "figures.py failed (exit " << code << ")";
    exit_code = code;
  });
  add_data_bench_command(*data, exit_code, "bench");
}

}  // namespace ruche::tools
