#include "engine/train/checkpointing.h"

#include <cstdio>
#include <filesystem>

namespace ruche {

namespace fs = std::filesystem;

Checkpointer::Checkpointer(const CheckpointOptions& options, const std::string& run_dir,
                           DataParallel& dp, StateLayout layout, CheckpointMeta meta,
                           const Fault& fault)
    : options_(options),
      root_((fs::path(run_dir) / "ckpt").string()),
      dp_(dp),
      layout_(std::move(layout)),
      meta_(std::move(meta)),
      fault_(fault) {
  RUCHE_REQUIRE(options.every_steps >= 0 && options.every_minutes >= 0 && options.keep >= 0)
      << "checkpoint intervals and --keep-checkpoints must be 0 or more";
}

Checkpointer::~Checkpointer() = default;  // the writer joins a write in flight

std::optional<LoadedCheckpoint> Checkpointer::find_resume() const {
  if (options_.resume.empty()) {
    // A fresh run writing among an earlier run's checkpoints would prune the wrong ones.
    const std::vector<std::string> earlier =
        options_.enabled && fs::exists(root_) ? committed_checkpoints(root_)
                                              : std::vector<std::string>{};
    RUCHE_REQUIRE(earlier.empty())
        << root_ << " holds checkpoints of an earlier run (newest "
        << fs::path(earlier.empty() ? "" : earlier.front()).filename().string()
        << "): continue it with --resume auto, or train into another --out";
    return std::nullopt;
  }
  if (options_.resume != "auto") return load_checkpoint(find_checkpoint(options_.resume));
  const std::vector<std::string> candidates =
      fs::exists(root_) ? committed_checkpoints(root_) : std::vector<std::string>{};
  for (const std::string& dir : candidates) {
    try {
      return load_checkpoint(dir);
    } catch (const Error& e) {
      if (dp_.lead()) {
        std::fprintf(stderr, "ruche: --resume auto: skipping %s: %s; trying the one before\n",
                     dir.c_str(), e.what());
      }
    }
  }
  if (dp_.lead()) {
    std::printf("--resume auto: %s in %s: starting fresh\n",
                candidates.empty() ? "no committed checkpoint" : "no usable checkpoint",
                root_.c_str());
  }
  return std::nullopt;
}

namespace {
// A JSON record on one line, for an error message.
std::string one_line(const std::string& json) {
  std::string s;
  for (char c : json) {
    if (c == '\n') continue;
    if (c == ' ' && !s.empty() && s.back() == ' ') continue;
    s += c;
  }
  return s;
}
}  // namespace

TrainingPosition Checkpointer::resume(Optimizer& optimizer) {
  TrainingPosition at;
  if (std::optional<LoadedCheckpoint> resumed = find_resume()) {
    // The same inputs, or the weights would meet data they were not trained on (older
    // checkpoints carry no record).
    RUCHE_REQUIRE(resumed->meta.preprocess.empty() || meta_.preprocess.empty() ||
                  resumed->meta.preprocess == meta_.preprocess)
        << resumed->dir << ": trained with other input preprocessing than this run's; resume "
        << "with the run's own --normalize (the checkpoint's record:"
        << one_line(resumed->meta.preprocess) << ")";
    restore(*resumed, layout_);
    at = resumed->meta.position;
    optimizer.set_step_count(at.step);
    saved_ = true;  // a run that trains no further need not write it again
    saved_step_ = at.step;
    std::printf("resumed from %s: step %lld, epoch %u, %lld samples into it (saved by %d rank%s "
                "with %d threads)\n",
                resumed->dir.c_str(), static_cast<long long>(at.step), at.epoch + 1,
                static_cast<long long>(at.samples_in_epoch), resumed->meta.world_size,
                resumed->meta.world_size > 1 ? "s" : "", resumed->meta.threads);
    const std::string differences =
        resume_differences(resumed->meta, meta_.world_size, meta_.threads);
    if (!differences.empty()) std::printf("%s\n", differences.c_str());
  }
  // Every rank must resume from the same step (one rank reading another checkpoint diverges).
  const std::vector<std::int64_t> starts = dp_.all_gather({at.step}, "resumed steps");
  for (std::size_t r = 1; r < starts.size(); ++r) {
    RUCHE_REQUIRE(starts[r] == starts[0]) << "rank " << r << " resumed at step " << starts[r]
                                          << ", rank 0 at step " << starts[0]
                                          << ": every rank must see the same RUN/ckpt";
  }
  return at;
}

float Checkpointer::vote_due() const {
  if (!options_.enabled || options_.every_minutes <= 0 || !dp_.lead()) return 0;
  const double minutes =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save_).count() / 60;
  return minutes >= options_.every_minutes ? 1.0f : 0.0f;
}

float Checkpointer::vote_written() const {
  return !pending_ || writer_.done() ? 1.0f : 0.0f;
}

bool Checkpointer::after_step(const TrainingPosition& position, float due_votes,
                              float written_votes, bool epoch_end_follows) {
  if (!options_.enabled) return false;
  if (pending_ && written_votes >= static_cast<float>(dp_.size())) commit_pending();
  const bool due = due_votes > 0 ||
                   (options_.every_steps > 0 && position.step % options_.every_steps == 0);
  if (!due || epoch_end_follows) return false;
  start_save(position);
  return true;
}

void Checkpointer::save_async(const TrainingPosition& position) {
  if (options_.enabled) start_save(position);
}

void Checkpointer::save_now(const TrainingPosition& position) {
  if (!options_.enabled) return;
  if (pending_ && pending_step_ == position.step) {
    commit_pending();
  } else if (!saved_ || saved_step_ != position.step) {
    start_save(position);
    commit_pending();
  }
}

void Checkpointer::finish() {
  if (pending_) commit_pending();
}

void Checkpointer::start_save(const TrainingPosition& position) {
  if (pending_) commit_pending();  // a second save waits for the first
  const ByteRange range = shard_range(layout_.total_bytes(), dp_.rank(), dp_.size());
  std::vector<std::uint8_t> bytes = writer_.take_buffer();  // the last save's, when there was one
  snapshot(layout_, range, bytes);  // the state as of this step boundary
  dp_.gather_state(layout_, range, bytes);  // ZeRO-1: the optimizer state other ranks hold
  pending_meta_ = meta_;
  pending_meta_.position = position;
  pending_step_ = position.step;
  pending_ = true;
  last_save_ = std::chrono::steady_clock::now();
  const Fault& fault = fault_;
  const std::int64_t step = position.step;
  const int rank = dp_.rank();
  writer_.start((fs::path(root_) / checkpoint_dir_name(position.step)).string(), dp_.rank(),
                dp_.size(), range, std::move(bytes),
                [&fault, step, rank] { fault.maybe_fail(Fault::Point::in_writer, step, rank); });
}

// Every rank: its shard is durable (collect), the records go to rank 0, which commits.
void Checkpointer::commit_pending() {
  const ShardRecord mine = writer_.collect();
  pending_ = false;
  fault_.maybe_fail(Fault::Point::after_shard_write, pending_step_, dp_.rank());
  const std::vector<std::int64_t> all = dp_.all_gather(
      {mine.range.begin, mine.range.end, static_cast<std::int64_t>(mine.crc32c)},
      "checkpoint shards");
  saved_ = true;
  saved_step_ = pending_step_;
  if (!dp_.lead()) return;
  std::vector<ShardRecord> shards;
  for (int r = 0; r < dp_.size(); ++r) {
    const std::size_t at = 3 * static_cast<std::size_t>(r);
    ShardRecord record;
    record.file = shard_file_name(r, dp_.size());
    record.range = {all[at], all[at + 1]};
    record.crc32c = static_cast<std::uint32_t>(all[at + 2]);
    shards.push_back(record);
  }
  commit_checkpoint(root_, pending_step_, layout_, pending_meta_, shards, options_.keep);
  std::printf("checkpoint %s committed\n",
              (fs::path(root_) / checkpoint_dir_name(pending_step_)).string().c_str());
}

}  // namespace ruche
