// What `ruche convert` writes beside its .tar shards (and `ruche index`, index_shards.h, beside
// shards written elsewhere), and what the shard reader reads first:
//   SHARDS/index.tsv   one line per shard: split, file, samples, data end, and
//   the byte offset of
//                      each sample's first tar header, tab-separated; lines
//                      starting with '#' are comments. The offsets let a reader
//                      cut a split at any sample and read one sample with one
//                      pread: sample i spans [offset[i], offset[i + 1]), the
//                      last one [offset[n - 1], end), where end is where the
//                      end-of-archive blocks start.
//   SHARDS/labels.txt  class names, one a line; line i is class i (the .cls
//   members' numbers).
// Tab-separated rather than JSON: one line a shard, read with split() in any
// language.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ruche {

struct ShardInfo {
  std::string split;  // "train", "val"
  std::string file;   // relative to the index's directory: "train-000000.tar"
  std::uint64_t end = 0;
  std::vector<std::uint64_t> offsets;  // one per sample, increasing
  std::int64_t samples() const { return static_cast<std::int64_t>(offsets.size()); }
};

struct ShardIndex {
  std::string dir;
  std::vector<std::string> classes;
  std::vector<ShardInfo> shards;  // per split in file order

  // The shards of `split`, in order; empty when it has none.
  std::vector<ShardInfo> split(const std::string& name) const;
};

inline constexpr const char* kShardIndexFile = "index.tsv";
inline constexpr const char* kShardLabelsFile = "labels.txt";

// Reads DIR/index.tsv and DIR/labels.txt; errors name the file and line.
ShardIndex read_shard_index(const std::string& dir);
// The same on the two files' texts (dir left empty); the paths name them in errors.
ShardIndex parse_shard_index(const std::string& index_text, const std::string& index_path,
                             const std::string& labels_text, const std::string& labels_path);
// Writes DIR/index.tsv and DIR/labels.txt (each to a temporary name, then
// renamed).
void write_shard_index(const ShardIndex& index);

}  // namespace ruche
