// SHARDS/index.tsv (ruche convert / ruche index), with a fixed labels.txt.
#include "engine/data/shard_index.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(shard_index) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const ruche::ShardIndex index =
      ruche::parse_shard_index(text, "shards/index.tsv", "cat\ndog\n", "shards/labels.txt");
  for (const char* split : {"train", "val"}) index.split(split);
}
