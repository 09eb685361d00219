// STUB: ruche xor (the perceptron / XOR example), to be written.
#include "tools/commands.h"

namespace ruche::tools {

void add_xor_command(CLI::App& app, int& exit_code) {
  app.add_subcommand("xor", "Train the XOR examples and print their truth tables")
      ->callback([&exit_code] { exit_code = 0; });
}

}  // namespace ruche::tools
