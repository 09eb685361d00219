// ruche plot: a run's curves (loss, accuracy, learning rate against epochs) and, from its
// evaluation reports, the confusion matrix and the ROC curve, as PNGs for a report. matplotlib
// draws them (tools/scripts/plot_run.py); this finds the python and the run's files.
#include <cstdio>
#include <filesystem>

#include "engine/error.h"
#include "tools/commands.h"
#include "tools/python.h"

namespace ruche::tools {

void add_plot_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string run, out;
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand(
      "plot", "Curves of a run (and its confusion matrix, ROC curve) as PNG files");
  cmd->add_option("run", o.run, "the run directory (holds metrics.jsonl)")->required();
  cmd->add_option("-o,--out", o.out,
                  "the curves' PNG (default RUN/curves.png); confusion.png and roc.png go beside "
                  "it when the run has an evaluation");
  cmd->callback([&exit_code] {
    namespace fs = std::filesystem;
    RUCHE_REQUIRE(fs::is_directory(o.run)) << o.run << ": not a run directory";
    RUCHE_REQUIRE(fs::is_regular_file(fs::path(o.run) / "metrics.jsonl"))
        << o.run << ": no metrics.jsonl (is it a ruche run directory?)";
    const fs::path out = o.out.empty() ? fs::path(o.run) / "curves.png" : fs::path(o.out);
    RUCHE_REQUIRE(out.extension() == ".png") << out.string() << ": the output must be a .png";
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    const std::string python = find_plotting_python();
    const int code =
        run_python(python, shipped_script("plot_run.py"), {"run", o.run, out.string()});
    // 2: the script said what was wrong with the run's files, in one line.
    RUCHE_REQUIRE(code == 0 || code == 2) << "plot_run.py failed (exit " << code << ")";
    exit_code = code;
  });
}

}  // namespace ruche::tools
