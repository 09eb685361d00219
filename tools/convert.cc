// ruche convert imagefolder SRC -o SHARDS/: an ImageFolder packed into
// WebDataset .tar shards with the index the shard reader needs
// (engine/data/convert.h has the details).
#include "engine/data/convert.h"

#include "tools/commands.h"

namespace ruche::tools {

void add_convert_command(CLI::App& app, int& exit_code) {
  static ConvertOptions o;
  CLI::App* cmd = app.add_subcommand("convert", "Convert a dataset into another format");
  cmd->require_subcommand(1);
  CLI::App* folder = cmd->add_subcommand("imagefolder",
                                         "Pack SRC/train/<class>/*, SRC/val/<class>/* (or "
                                         "SRC/<class>/*) into WebDataset .tar "
                                         "shards (key.jpg, key.cls) with index.tsv and labels.txt; "
                                         "parallel and resumable");
  folder->add_option("SRC", o.source, "the ImageFolder root")->required();
  folder->add_option("-o,--output", o.out, "the shard directory (created; a rerun resumes)")
      ->required();
  folder->add_option("--shard-mb", o.shard_mb, "source megabytes per shard, about")
      ->capture_default_str();
  folder
      ->add_option("--resize-short", o.resize_short,
                   "re-encode images whose short side is larger than N to N "
                   "(0: keep bytes)")
      ->capture_default_str();
  folder->add_option("--quality", o.quality, "JPEG quality of re-encoded images")
      ->capture_default_str();
  folder->add_option("--workers", o.workers, "threads, each writing whole shards (0: all cores)")
      ->capture_default_str();
  folder->add_option("--seed", o.seed, "seed of the file order's permutation")
      ->capture_default_str();
  folder->add_flag("!--no-shuffle", o.shuffle,
                   "keep the sorted file order (shards then hold one or two classes each)");
  folder->callback([&exit_code] {
    convert_imagefolder(o);
    exit_code = 0;
  });
}

}  // namespace ruche::tools
