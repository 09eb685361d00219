// Running the Python scripts shipped with ruche (tools/scripts/): the figures of `ruche plot` and
// `ruche lr-find` are drawn by matplotlib, which C++ has no match for.
#pragma once

#include <string>
#include <vector>

namespace ruche::tools {

// The interpreter to draw with: $RUCHE_PYTHON, else python3 on PATH, checked to import
// matplotlib. Throws ruche::Error saying what was tried when neither does.
std::string find_plotting_python();

// The path of tools/scripts/NAME: beside the installed binary (../share/ruche/scripts) or in the
// source tree it was built from. Throws ruche::Error when neither holds it.
std::string shipped_script(const std::string& name);

// Runs `python script args...` (no shell), its output going to ours; returns its exit status.
int run_python(const std::string& python, const std::string& script,
               const std::vector<std::string>& args);

}  // namespace ruche::tools
