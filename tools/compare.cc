// ruche compare RUN1 RUN2 ... [-o DIR]: runs in competition (engine/train/compare_runs.h). Prints
// the table and the t-tests; with -o writes DIR/compare.json and DIR/compare.png, the validation
// curves overlaid (matplotlib, tools/scripts/figures.py, as `ruche plot` draws).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "engine/train/compare_runs.h"
#include "tools/commands.h"
#include "tools/python.h"

namespace ruche::tools {

void add_compare_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::vector<std::string> runs;
    std::string out;
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand(
      "compare", "Runs side by side: a table, the curves overlaid, and (seeds) Welch's t-test");
  cmd->add_option("runs", o.runs,
                  "run directories, or directories of seeds (RUN/seed-1, ... from ruche train "
                  "--seeds N)")
      ->required();
  cmd->add_option("-o,--out", o.out, "write DIR/compare.json and DIR/compare.png");
  cmd->callback([&exit_code] {
    namespace fs = std::filesystem;
    const std::string python = o.out.empty() ? "" : find_plotting_python();
    const Comparison c = compare_runs(o.runs);
    std::fputs(render_comparison(c).c_str(), stdout);
    exit_code = 0;
    if (o.out.empty()) return;
    const fs::path dir(o.out);
    fs::create_directories(dir);
    const std::string json = (dir / "compare.json").string();
    {
      std::ofstream f(json);
      f << comparison_json(c);
      RUCHE_REQUIRE(f.good()) << json << ": cannot write";
    }
    std::printf("wrote %s\n", json.c_str());
    const int code = run_python(python, shipped_script("figures.py"),
                                {"compare", json, (dir / "compare.png").string()});
    RUCHE_REQUIRE(code == 0 || code == 2) << "figures.py failed (exit " << code << ")";
    exit_code = code;
  });
}

}  // namespace ruche::tools
