// ruche: the command line. Exit codes as docs/ARCHITECTURE.md says: 0 done, 2 user error, 1 an
// internal error (a bug: one line, never an abort).
#include <cstdio>
#include <exception>

#include "engine/error.h"
#include "tools/commands.h"

namespace {

// Builds the command line and runs the command it names; CLI11's own outcomes (--help, a bad flag)
// become their exit codes here, the rest is main's.
int run(int argc, char** argv) {
  CLI::App app{"ruche: data-parallel training of convolutional networks"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ruche 0.1.0");
  int exit_code = 0;
  ruche::tools::add_devices_command(app, exit_code);
  ruche::tools::add_train_command(app, exit_code);
  ruche::tools::add_eval_command(app, exit_code);
  ruche::tools::add_export_command(app, exit_code);
  ruche::tools::add_inspect_command(app, exit_code);
  ruche::tools::add_convert_command(app, exit_code);
  ruche::tools::add_import_command(app, exit_code);
  ruche::tools::add_index_command(app, exit_code);
  ruche::tools::add_data_command(app, exit_code);
  ruche::tools::add_data_bench_command(app, exit_code);
  ruche::tools::add_compare_command(app, exit_code);
  ruche::tools::add_visualize_command(app, exit_code);
  ruche::tools::add_time_command(app, exit_code);
  ruche::tools::add_plot_command(app, exit_code);
  ruche::tools::add_lr_find_command(app, exit_code);
  ruche::tools::add_xor_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return exit_code;
}

}  // namespace

// Everything, the command line's set-up included, inside the one catch.
int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen, even in a pipe
  try {
    return run(argc, argv);
  } catch (const ruche::Error& e) {
    std::fprintf(stderr, "ruche: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {  // a broken invariant: said in one line, never a core dump
    std::fprintf(stderr, "ruche: internal error: %s (please report)\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "ruche: internal error: an unknown exception (please report)\n");
    return 1;
  }
}
