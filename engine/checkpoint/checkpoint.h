// Sharded checkpoints (docs/ARCHITECTURE.md, Checkpoints). The logical state of a run is one byte
// sequence: the parameters, then each optimizer slot, then the buffers (f32, as the flat buffers
// lay them out). Rank r of n writes bytes [r L / n, (r + 1) L / n) of it to its own shard, so
// saving speeds up with ranks:
//
//   RUN/ckpt/step-00012000/manifest.pb              tensors, shards (file, range, crc32c), meta
//   RUN/ckpt/step-00012000/shard-00000-of-00004.bin
//   RUN/ckpt/step-00012000/COMMIT                   written last, by rank 0
//   RUN/ckpt/latest                                 names the newest committed step
//
// Every file is written as *.tmp, fsynced and renamed; a directory without COMMIT does not exist
// for resume. Loading reads every shard and maps it onto any world size (every rank holds the
// whole replica, so resharding is reading the same bytes).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/graph/net.h"
#include "engine/optim/optimizer.h"
#include "engine/tensor/tensor.h"

namespace ruche {

// A contiguous f32 tensor (any device) placed in the logical state, end to end with the others.
struct StateRegion {
  std::string name;  // "params", "momentum_buffer", "buffers"
  Tensor tensor;     // the elements this rank holds
  // ZeRO-1's optimizer slots: the rank holds elements [held_begin, held_begin + tensor.numel())
  // of a region of `numel` elements (its range). -1: the tensor is the whole region.
  std::int64_t numel = -1;
  std::int64_t held_begin = 0;
  bool whole() const { return numel < 0; }
  std::int64_t bytes() const {  // of the logical state, held or not
    return (whole() ? tensor.numel() : numel) * static_cast<std::int64_t>(sizeof(float));
  }
};

// One named tensor of the logical state, as the manifest lists it.
struct StateTensor {
  std::string name;  // "conv1.weight", "momentum_buffer.conv1.weight", "bn1.running_mean"
  Shape shape;
  DType dtype = DType::f32;
  std::int64_t offset = 0;  // bytes from the start of the logical state
  std::int64_t bytes = 0;
};

struct StateLayout {
  std::vector<StateRegion> regions;  // in state order
  std::vector<StateTensor> tensors;  // every named tensor, in state order
  std::int64_t total_bytes() const;
};

// The state of a training run: params() (every ParamEntry, frozen ones included), then each
// optimizer slot over the trainable entries ("<slot>.<entry name>"), then buffers(). A ZeRO-1
// optimizer's slots are regions held in part (StateRegion::held_begin); the logical state, and so
// the checkpoint, is the same with or without ZeRO and on any world size.
StateLayout training_state_layout(Net& net, Optimizer& optimizer);

// Where training is, beside the tensors: what an exact resume needs.
struct TrainingPosition {
  std::int64_t step = 0;    // optimizer steps done (also the optimizer's step count)
  std::uint32_t epoch = 0;  // the epoch in progress, from 0
  // Samples of this epoch consumed by all ranks together: the world-size independent position in
  // the epoch's order (DistributedSampler: global positions [0, samples_in_epoch) are done).
  std::int64_t samples_in_epoch = 0;
  std::uint64_t micro_batches = 0;  // forward passes so far (they key the dropout streams)
  std::int64_t skipped_steps = 0;   // --on-nan skip
  double best = NAN;                // early stopping: best validation value so far
  std::int32_t best_epoch = 0;
  std::int32_t epochs_without_gain = 0;
  double elapsed_seconds = 0;  // training time before this checkpoint
  // A streamed source's position within the epoch (ShardPosition's text); "" for indexable ones,
  // whose position is samples_in_epoch.
  std::string data_position;
  float loss_scale = 0;  // fp16's dynamic loss scale; 0: none
  std::int32_t loss_scale_growth_tracker = 0;
};

struct CheckpointMeta {
  TrainingPosition position;
  std::int32_t world_size = 1;
  std::int32_t threads = 0;    // CPU threads per rank (bit-identical resume needs the same)
  std::string net;             // prototxt of the net
  std::string solver;          // prototxt of the solver as given
  std::uint64_t net_hash = 0;  // of the tensors' names and shapes: a resume checks it
  std::string preprocess;      // the run's input record (RUN/preprocess.json); "": older runs
};

struct ByteRange {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
  bool operator==(const ByteRange&) const = default;
};

// Rank r's share of `total` bytes among `world` ranks: [r total / world, (r + 1) total / world).
ByteRange shard_range(std::int64_t total, int rank, int world);

// "step-00012000"; the shard file "shard-00001-of-00004.bin".
std::string checkpoint_dir_name(std::int64_t step);
std::string shard_file_name(int rank, int world);

// Copies the bytes `range` of the state out of the layout's regions to host memory (at a step
// boundary: training may change the tensors once it returns). `out` is resized. Bytes of regions
// held in part (ZeRO-1 slots) that this rank does not hold are left as they are: the trainer
// fetches them from their ranks (DataParallel::gather_state).
void snapshot(const StateLayout& layout, ByteRange range, std::vector<std::uint8_t>& out);

// A shard as written: its file name in the checkpoint directory, its range and its crc32c.
struct ShardRecord {
  std::string file;
  ByteRange range;
  std::uint32_t crc32c = 0;
};

// Writes rank's shard into `dir` (created if missing): .tmp, fsync, rename. A full disk or an
// unwritable directory is a ruche::Error naming the file; the .tmp is removed.
ShardRecord write_shard(const std::string& dir, int rank, int world, ByteRange range,
                        const std::vector<std::uint8_t>& bytes);

// Writes one shard on a background thread, so training goes on while it saves. Movable bytes in,
// a ShardRecord (or the writer's error) out.
class ShardWriter {
 public:
  ShardWriter() = default;
  ~ShardWriter();  // waits for a write in flight
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Starts writing; a write already in flight is waited for first. `before_write` runs on the
  // writer thread first (fault injection: RUCHE_FAULT=crash_in_writer).
  void start(std::string dir, int rank, int world, ByteRange range, std::vector<std::uint8_t> bytes,
             std::function<void()> before_write = {});
  bool busy() const;  // started and not yet collected
  bool done() const;  // the write in flight has finished (successfully or not)
  // Waits for the write in flight and returns its record; rethrows its error.
  ShardRecord collect();
  // The buffer of the last collected write, to snapshot the next save into without allocating
  // and faulting in fresh pages (8x faster for resnet18's 89 MB: benchmarks/results/checkpoint-*).
  std::vector<std::uint8_t> take_buffer() { return std::move(spare_); }
  // Wall seconds the last collected write took on the writer thread (crc32c, write, fsync,
  // rename): what --checkpoint-every-steps auto counts as a save's write.
  double last_seconds() const { return last_seconds_; }

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::thread thread_;
  std::vector<std::uint8_t> spare_;
  double last_seconds_ = 0;
};

// Rank 0, once every rank's shard is durable: writes manifest.pb, then COMMIT, then
// ckpt_root/latest, each .tmp + fsync + rename (and the directories fsynced); then deletes the
// oldest committed checkpoints beyond `keep` (keep <= 0: keeps all), and uncommitted ones older
// than this (a newer uncommitted one may be a save in flight). meta.net_hash is 0 or
// state_hash(layout); the manifest records state_hash(layout) either way.
void commit_checkpoint(const std::string& ckpt_root, std::int64_t step, const StateLayout& layout,
                       const CheckpointMeta& meta, const std::vector<ShardRecord>& shards,
                       int keep);

// Committed checkpoint directories under ckpt_root (those with COMMIT), newest step first, as
// paths (ckpt_root/step-00012000). A missing ckpt_root has none.
std::vector<std::string> committed_checkpoints(const std::string& ckpt_root);

struct LoadedCheckpoint {
  std::string dir;
  CheckpointMeta meta;
  std::vector<StateTensor> tensors;
  std::vector<std::uint8_t> state;  // the whole logical state, every shard's crc verified
};

// Reads and verifies a checkpoint: COMMIT present, manifest.pb parses, every shard present with
// its size and crc32c, the shards tiling the state. Each failure is a ruche::Error naming the
// file and what is wrong ("shard-00001-of-00002.bin: truncated: 1000 of 4096 bytes").
LoadedCheckpoint load_checkpoint(const std::string& dir);

// Copies a loaded state into the layout's tensors (of a region held in part, the part held: that
// is resharding ZeRO-1's optimizer state). The tensors' names, shapes and order must be
// the same, else a ruche::Error: the checkpoint is of another net (or optimizer), naming the first
// tensor that differs.
void restore(const LoadedCheckpoint& checkpoint, const StateLayout& layout);

// `ruche inspect`: step, epoch, position, world size, threads, committed or not, every tensor
// (name, shape, bytes) and every shard (file, range, crc32c, present and matching or not).
std::string describe_checkpoint(const std::string& dir);

// crc32c (Castagnoli) of bytes, continuing from `crc` (0 to start).
std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0);

// FNV-1a (64-bit) of the tensors' names, dtypes and shapes, in order: CheckpointMeta::net_hash.
// commit_checkpoint records it; load_checkpoint checks the manifest against it and restore checks
// it against the layout restored into.
std::uint64_t state_hash(const std::vector<StateTensor>& tensors);
inline std::uint64_t state_hash(const StateLayout& layout) { return state_hash(layout.tensors); }

// What keeps a resume from being bit-identical to a run that never stopped (docs/ARCHITECTURE.md,
// Randomness and determinism): another world size or CPU thread count than the checkpoint's. ""
// when nothing does; else one line naming both, for the trainer to print (the resume is still exact
// in position: same samples, same steps).
std::string resume_differences(const CheckpointMeta& meta, int world_size, int threads);

// The parameters and buffers of a loaded checkpoint (no optimizer state) as CPU f32 tensors under
// their state_dict names, in PyTorch's order: the layers as the manifest's net lists them, each
// layer's weight, bias, other parameters, then its buffers. num_batches_tracked stays f32 [] here.
std::vector<std::pair<std::string, Tensor>> checkpoint_weights(const LoadedCheckpoint& checkpoint);

// The checkpoint directory `path` names: itself when it holds a manifest.pb (committed or not),
// else the newest committed checkpoint of a ckpt root (path/step-*) or of a run directory
// (path/ckpt/step-*). A ruche::Error naming `path` when there is none.
std::string find_checkpoint(const std::string& path);

}  // namespace ruche
