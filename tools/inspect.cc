// ruche inspect: what a checkpoint holds (step, position, world size, tensors, shards) and
// whether every shard is present and matches its crc32c.
#include <cstdio>
#include <string>

#include "engine/checkpoint/checkpoint.h"
#include "tools/commands.h"

namespace ruche::tools {

void add_inspect_command(CLI::App& app, int& exit_code) {
  static std::string path;
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Describe a checkpoint: position, tensors, shards and their crc32c");
  cmd->add_option("CKPT", path,
                  "a checkpoint directory (RUN/ckpt/step-N), or a run or ckpt directory (its "
                  "newest committed checkpoint)")
      ->required();
  cmd->callback([&exit_code] {
    const std::string text = describe_checkpoint(find_checkpoint(path));
    std::fwrite(text.data(), 1, text.size(), stdout);
    exit_code = 0;
  });
}

}  // namespace ruche::tools
