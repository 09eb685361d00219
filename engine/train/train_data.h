// The data side of a training run: the batches each rank trains and validates on, from an
// indexable dataset (BatchLoader over open_splits) or from `ruche convert` shards (ShardLoader
// over DIR/index.tsv), and what the net and the run directory need to know about them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/data/batch_source.h"
#include "engine/data/open.h"
#include "engine/data/preprocess.h"
#include "engine/data/transform.h"
#include "engine/proto/ruche.pb.h"

namespace ruche {

struct TrainDataOptions {
  int rank = 0, ranks = 1;
  Device device = Device::cpu();
  int workers = 0;   // --data-workers; 0: all cores for JPEG sources, 1 for in-memory ones
  int prefetch = 0;  // --prefetch: batches buffered; 0: workers + 1
  PreprocessSource preprocess;  // the record to follow, else --normalize
};

struct TrainData {
  std::string kind;  // "fashion-mnist", "imagefolder", "shards", ...
  Shape sample_shape;
  // One sample's float target: the input's shape with --reconstruct, an npz's float y's
  // (regression), else [] (class labels).
  Shape target_shape;
  int classes = 0;
  std::vector<std::string> class_names;
  std::int64_t train_size = 0, val_size = 0, test_size = 0;
  std::unique_ptr<BatchSource> train;  // full batches, the same number of steps on every rank
  std::unique_ptr<BatchSource> val;    // every sample once over the ranks; null: no validation
  DataSplits splits;                   // indexable sources only (the final test evaluation)
  Normalization norm;                  // indexable sources: what evaluate_split applies
  proto::Preprocess preprocess;        // the run's record (RUN/preprocess.json)
  std::vector<float> class_weights;    // --class-weights resolved (training split); empty: none
};

// The splits of --data with their normalisation as `source` says. JPEG sources normalise as they
// decode (the record goes into their decoder); the others leave it to the loader: `norm`.
struct NormalizedSplits {
  DataSplits splits;
  Normalization norm;        // for the loader's Transform (empty for JPEG sources)
  proto::Preprocess record;  // the run's record
};
NormalizedSplits open_normalized_splits(const DataSpec& spec, double val_fraction,
                                        std::uint64_t seed, const PreprocessSource& source);

// Opens --data for this rank as `solver` says (batch size, seed, shuffle, augment, val_fraction).
TrainData open_train_data(const DataSpec& spec, const proto::SolverParameter& solver,
                          const TrainDataOptions& options);

// Whether --data names .tar shards (index_shards.h's names_shards: a directory of them, with or
// without index.tsv, one .tar, or a brace pattern or glob).
bool is_shard_dir(const std::string& dir);

}  // namespace ruche
