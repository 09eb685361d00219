// `ruche convert imagefolder SRC -o SHARDS/`: an ImageFolder packed into .tar
// shards in the WebDataset layout, plus the index the shard reader needs
// (shard_index.h).
//
// SRC is SRC/train/<class>/... with an optional SRC/val/<class>/..., or
// SRC/<class>/... alone (one split, "train"). Classes are the sorted folder
// names of train (torchvision's ImageFolder); val's folders must be among them.
// Every regular, non-hidden file under a class folder is a candidate image. Per
// split the shards are SHARDS/<split>-000000.tar, ... and each sample is two
// members: `<key>.jpg` (the JPEG) and `<key>.cls` (the class index as text).
// The key is the path relative to the split folder without its extension, '/'
// and '.' replaced by
// '_' (WebDataset cuts the key at the first dot); a collision is an error
// naming both files.
//
// The plan is a pure function of the file list and the options, so the
// conversion is parallel and resumable: the sorted list is permuted once with
// Philox keyed by `seed` (shards made from sorted files would hold one or two
// classes each, and a reader's shuffle buffer could not mix them back), then
// cut into shards greedily by the source files' sizes (--shard-mb). Workers
// take whole shards; a shard is written to <name>.tmp and renamed when
// complete, so a rerun finds the complete ones, checks their keys against the
// plan, reuses them and says so. Every image is decoded once to check it (and,
// with resize_short N, re-encoded with its short side N when it is larger); an
// unreadable one is reported with its path and reason and left out.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace ruche {

struct ConvertOptions {
  std::string source;       // the ImageFolder root
  std::string out;          // the shard directory (created)
  double shard_mb = 256;    // source bytes per shard, about
  int resize_short = 0;     // > 0: re-encode images whose short side is larger, to this side
  int quality = 90;         // JPEG quality of re-encoded images
  int workers = 0;          // threads, each writing whole shards; 0: the hardware's
  bool shuffle = true;      // permute the sorted file list before cutting it into shards
  std::uint64_t seed = 0;   // of that permutation
  std::FILE* log = stdout;  // progress lines and the summary; nullptr: quiet
};

struct SkippedImage {
  std::string path;
  std::string reason;
};

struct ConvertSummary {
  std::int64_t images = 0;  // samples in the shards
  int classes = 0;
  int shards = 0;         // all of them
  int shards_reused = 0;  // complete before this run, left as they were
  std::vector<SkippedImage> skipped;
  std::uint64_t bytes = 0;  // of all shards
  double seconds = 0;
  std::string text() const;  // the summary: one line, then one per skipped image
};

ConvertSummary convert_imagefolder(const ConvertOptions& options);

}  // namespace ruche
