// Shards ruche did not write: `ruche index SHARDS/` and what `ruche train --data` does with a
// directory, a brace pattern or a glob of WebDataset .tar shards that lack ruche's index.
//
// index_shards reads every DIR/*.tar (headers, and the label members' few bytes), groups members
// into samples as webdataset does (engine/data/webdataset.h) and writes DIR/index.tsv and
// DIR/labels.txt (shard_index.h). The split of a shard comes from its file name: val*,
// validation* -> val; test* -> test (never trained on); anything else -> train. Class names come
// from DIR/classes.txt, else DIR/labels.txt, one a line (a labels.txt holding just 0..K-1, as
// this indexer writes without a names file, is not taken as names); without either they are the
// label numbers 0..max, or the sorted label names when the labels are names.
//
// Parallel and resumable like `ruche convert`: workers take whole shards, and each shard's result
// is kept in DIR/.ruche-index/<file>.tsv with the shard's size and modification time, so a rerun
// (or a run interrupted half-way) reads again only the shards that are new or changed. Progress
// is one line (rewritten in place on a terminal), then a summary: shards, samples, members
// skipped, and each sample skipped for lacking its image or label, named.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/data/shard_index.h"

namespace ruche {

struct IndexOptions {
  std::string dir;          // the shard directory
  int workers = 0;          // threads, each reading whole shards; 0: the hardware's
  bool write = true;        // false: build in memory only (ranks other than 0 of a training run)
  std::FILE* log = stdout;  // progress and summary; nullptr: quiet
  std::string prefix = "index: ";  // of every line logged
};

struct IndexSummary {
  int shards = 0, reused = 0;  // reused: results kept from an earlier run
  std::int64_t samples = 0;
  std::int64_t skipped_members = 0;     // not part of any sample
  std::vector<std::string> incomplete;  // samples lacking an image or a label, named
  double seconds = 0;
  std::string text() const;  // one line, then one per incomplete sample
};

ShardIndex index_shards(const IndexOptions& options, IndexSummary* summary = nullptr);

// The split a shard's file name puts it in: "val", "test" or "train".
std::string shard_split_of(const std::string& file);

// webdataset's brace expansion: {a,b,c} alternatives and {000000..000146} ranges (zero-padded to
// the width of the bounds when one has a leading zero), nested and repeated.
std::vector<std::string> expand_braces(const std::string& pattern);

// The files a --data or --val-data value names: a brace pattern and/or a glob (*, ?, [..] in the
// last path component), sorted within each glob; every file must exist.
std::vector<std::string> expand_shard_pattern(const std::string& pattern);

// Whether a --data value names .tar shards: a directory holding index.tsv, or *.tar files and no
// train/ folder (an ImageFolder), a .tar file, or a pattern of them.
bool names_shards(const std::string& data);

struct ShardSetOptions {
  int rank = 0;             // only rank 0 writes an index it builds, and logs
  int workers = 0;          // indexing threads
  std::FILE* log = stdout;  // rank 0's "data: ..." lines
};

// The shards a run trains and validates on, as one index with splits "train" and "val" (its dir:
// the training shards' directory; files elsewhere by absolute path). `data`: a directory (its
// train split, and its val split for validation) or a pattern (those files, whatever their
// names). `val_data` (may be empty): a pattern or a directory (its val split, else all of its
// shards); empty: the val split of the training shards' directory, less any shard trained on.
// A directory without index.tsv, or whose index lacks a shard named, is indexed first
// (index_shards), saying so and how long it took; in memory only when the directory is read-only.
ShardIndex open_shard_set(const std::string& data, const std::string& val_data,
                          const ShardSetOptions& options);

}  // namespace ruche
