// ruche index SHARDS/: DIR/index.tsv and labels.txt for WebDataset .tar shards ruche did not
// write (webdataset's ShardWriter, Python's tarfile, GNU tar), so `ruche train --data SHARDS/`
// reads them; parallel and resumable (engine/data/index_shards.h has the details).
#include "engine/data/index_shards.h"
#include "tools/commands.h"

namespace ruche::tools {

void add_index_command(CLI::App& app, int& exit_code) {
  static IndexOptions o;
  CLI::App* cmd = app.add_subcommand(
      "index",
      "Index a directory of WebDataset .tar shards (key.jpg/.png + key.cls/.json/.txt, ustar, "
      "PAX or GNU tar) into index.tsv and labels.txt for ruche train; parallel and resumable");
  cmd->add_option("SHARDS", o.dir, "the directory of .tar shards")->required();
  cmd->add_option("--workers", o.workers, "threads, each reading whole shards (0: all cores)")
      ->capture_default_str();
  cmd->callback([&exit_code] {
    index_shards(o);
    exit_code = 0;
  });
}

}  // namespace ruche::tools
