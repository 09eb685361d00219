// The ruche subcommands; each file in tools/ adds one to the CLI. Logic lives in engine/.
#pragma once

#include <CLI/CLI.hpp>

namespace ruche::tools {

// Each adds its subcommand to `app`; when it runs it stores its exit status in `exit_code`.
void add_devices_command(CLI::App& app, int& exit_code);
void add_xor_command(CLI::App& app, int& exit_code);
void add_train_command(CLI::App& app, int& exit_code);
void add_eval_command(CLI::App& app, int& exit_code);
void add_export_command(CLI::App& app, int& exit_code);
void add_time_command(CLI::App& app, int& exit_code);
void add_inspect_command(CLI::App& app, int& exit_code);
void add_convert_command(CLI::App& app, int& exit_code);
void add_plot_command(CLI::App& app, int& exit_code);
void add_lr_find_command(CLI::App& app, int& exit_code);
// `app` is the root (name data-bench, hidden) or `ruche data` (name bench).
void add_data_bench_command(CLI::App& app, int& exit_code, const char* name = "data-bench");
// ruche data: describe (tools/data_describe.cc) and bench.
void add_data_command(CLI::App& app, int& exit_code);
// ruche compare (tools/compare.cc) and ruche visualize (tools/visualize.cc).
void add_compare_command(CLI::App& app, int& exit_code);
void add_visualize_command(CLI::App& app, int& exit_code);
void add_index_command(CLI::App& app, int& exit_code);
// ruche import caffe (tools/import.cc).
void add_import_command(CLI::App& app, int& exit_code);

}  // namespace ruche::tools
