#include "engine/train/checkpointing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "engine/checkpoint/file_io.h"
#include "engine/checkpoint/manifest.h"

namespace ruche {

namespace fs = std::filesystem;

void parse_checkpoint_every_steps(const std::string& text, CheckpointOptions& options) {
  const auto number = [&text](const std::string& digits, bool fraction, double& out) {
    char* end = nullptr;
    out = digits.empty() ? -1 : std::strtod(digits.c_str(), &end);
    RUCHE_REQUIRE(!digits.empty() && *end == '\0' && out >= 0 &&
                  (fraction || out == std::floor(out)))
        << "--checkpoint-every-steps " << text
        << ": want a number of steps (0: off), auto, or auto:P% (e.g. auto:5%)";
  };
  if (text.rfind("auto", 0) == 0) {
    double percent = 2;
    if (text.size() > 4) {
      RUCHE_REQUIRE(text[4] == ':')
          << "--checkpoint-every-steps " << text << ": want auto or auto:P% (e.g. auto:5%)";
      std::string p = text.substr(5);
      if (!p.empty() && p.back() == '%') p.pop_back();
      number(p, true, percent);
      RUCHE_REQUIRE(percent > 0 && percent < 100)
          << "--checkpoint-every-steps " << text << ": the bound must be above 0% and below 100%";
    }
    options.auto_percent = percent;
    options.every_steps = 0;
    return;
  }
  double steps = 0;
  number(text, false, steps);
  options.every_steps = static_cast<std::int64_t>(steps);
  options.auto_percent = 0;
}

std::int64_t choose_cadence(double step_seconds, double save_seconds, double percent) {
  RUCHE_REQUIRE(percent > 0) << "checkpoint cost bound " << percent << "%: must be above 0";
  if (!(save_seconds > 0)) return 1;
  if (!(step_seconds > 0)) return kMaxAutoCadence;
  // save <= p N step  <=>  N >= save / (p step); a hair of slack so that an exact bound is met
  // by the N it names rather than the next one.
  const double n = std::ceil(save_seconds / (percent / 100 * step_seconds) * (1 - 1e-12));
  return static_cast<std::int64_t>(std::clamp(n, 1.0, static_cast<double>(kMaxAutoCadence)));
}

namespace {
using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double median(std::deque<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty()      ? 0
         : v.size() % 2 ? v[v.size() / 2]
                        : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}
}  // namespace

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
  RUCHE_REQUIRE(options.auto_percent >= 0 && options.auto_percent < 100)
      << "--checkpoint-every-steps auto:" << options.auto_percent << "%: want a bound in (0, 100)";
  RUCHE_REQUIRE(options.auto_percent == 0 ||
                (options.every_steps == 0 && options.every_minutes == 0))
      << "--checkpoint-every-steps auto replaces the time and step intervals";
}

Checkpointer::~Checkpointer() = default;  // the writer joins a write in flight

std::optional<LoadedCheckpoint> Checkpointer::find_resume() const {
  if (options_.resume.empty()) {
    // A fresh run writing among an earlier run's checkpoints would prune the wrong ones.
    const std::vector<std::string> earlier = options_.enabled && fs::exists(root_)
                                                 ? committed_checkpoints(root_)
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
    last_save_step_ = last_step_ = at.step;
    std::printf(
        "resumed from %s: step %lld, epoch %u, %lld samples into it (saved by %d rank%s "
        "with %d threads)\n",
        resumed->dir.c_str(), static_cast<long long>(at.step), at.epoch + 1,
        static_cast<long long>(at.samples_in_epoch), resumed->meta.world_size,
        resumed->meta.world_size > 1 ? "s" : "", resumed->meta.threads);
    const std::string differences =
        resume_differences(resumed->meta, meta_.world_size, meta_.threads);
    if (!differences.empty()) std::printf("%s\n", differences.c_str());
    std::fflush(stdout);  // said even when the rank is killed soon after (ruche-run's logs)
  }
  // Every rank must resume from the same step (one rank reading another checkpoint diverges).
  const std::vector<std::int64_t> starts = dp_.all_gather({at.step}, "resumed steps");
  for (std::size_t r = 1; r < starts.size(); ++r) {
    RUCHE_REQUIRE(starts[r] == starts[0])
        << "rank " << r << " resumed at step " << starts[r] << ", rank 0 at step " << starts[0]
        << ": every rank must see the same RUN/ckpt";
  }
  return at;
}

float Checkpointer::vote_due() const {
  if (!options_.enabled || !dp_.lead()) return 0;
  if (options_.auto_percent > 0) {
    // The step being voted on ends as last_step_ + 1. Before a cadence is chosen, one save is
    // made to be measured once the step time is known (again kMeasureSteps later if it failed).
    const std::int64_t since = last_step_ + 1 - last_save_step_;
    if (cadence_.every == 0) {
      return step_samples_.size() >= static_cast<std::size_t>(kMeasureSteps) && !pending_ &&
                     since >= kMeasureSteps
                 ? 1.0f
                 : 0.0f;
    }
    return since >= cadence_.every ? 1.0f : 0.0f;
  }
  if (options_.every_minutes <= 0) return 0;
  const double minutes =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save_).count() / 60;
  return minutes >= options_.every_minutes ? 1.0f : 0.0f;
}

float Checkpointer::vote_written() const { return !pending_ || writer_.done() ? 1.0f : 0.0f; }

bool Checkpointer::after_step(const TrainingPosition& position, float due_votes,
                              float written_votes, bool epoch_end_follows) {
  if (!options_.enabled) return false;
  if (options_.auto_percent > 0) time_step(position.step);
  if (pending_ && written_votes >= static_cast<float>(dp_.size())) commit_pending();
  const bool due =
      due_votes > 0 || (options_.every_steps > 0 && position.step % options_.every_steps == 0);
  if (!due || epoch_end_follows) return false;
  start_save(position);
  return true;
}

void Checkpointer::save_async(const TrainingPosition& position) {
  if (options_.enabled) start_save(position);
}

bool Checkpointer::save_now(const TrainingPosition& position) {
  if (!options_.enabled) return true;
  bool ok = true;
  if (pending_ && pending_step_ == position.step) {
    ok = commit_pending(true);
  } else if (!saved_ || saved_step_ != position.step) {
    start_save(position);
    ok = commit_pending(true);
  }
  // Rank 0 alone knows whether its manifest and COMMIT were written: every rank takes its word,
  // so that a second save_now of this step (a stop signal's, then the run's end) runs the same
  // collectives everywhere.
  const bool committed = dp_.all_gather({ok ? 1 : 0}, "final checkpoint committed")[0] == 1;
  if (!committed) saved_ = false;
  return committed;
}

// auto: the time since the last step ended is a sample of the step time when no save started,
// was written or was committed during it; the cadence follows the step time.
void Checkpointer::time_step(std::int64_t step) {
  const Clock::time_point now = Clock::now();
  last_step_ = step;
  const bool clean = !step_dirty_ && !pending_ && last_step_end_.has_value();
  if (clean && warmup_left_ > 0) {
    --warmup_left_;
  } else if (clean) {
    step_samples_.push_back(seconds_between(*last_step_end_, now));
    if (step_samples_.size() > 50) step_samples_.pop_front();
    if (cadence_.every > 0) choose_auto_cadence("the step time changed");
  }
  last_step_end_ = now;
  step_dirty_ = false;
}

// Rank 0 takes the new choice (its cost is within the bound) and says so when it moved by more
// than 20% from the cadence it last printed (step-time noise moves it by a step or two).
void Checkpointer::choose_auto_cadence(const char* why) {
  if (!dp_.lead() || step_samples_.empty() || save_samples_.empty()) return;
  CheckpointCadence next;
  next.step_seconds = median(step_samples_);
  next.save_seconds = median(save_samples_);
  next.every = choose_cadence(next.step_seconds, next.save_seconds, options_.auto_percent);
  next.cost_percent =
      100 * next.save_seconds / (static_cast<double>(next.every) * next.step_seconds);
  const bool first = cadence_.every == 0;
  cadence_ = next;
  const double said = static_cast<double>(printed_every_);
  if (!first && std::abs(static_cast<double>(next.every) - said) <= 0.2 * said) return;
  printed_every_ = next.every;
  std::printf(
      "checkpoint cadence (auto, within %g%%): every %lld steps (%s: a step takes %.4g s, "
      "a save %.4g s: %.2f%%)\n",
      options_.auto_percent, static_cast<long long>(cadence_.every), first ? "measured" : why,
      cadence_.step_seconds, cadence_.save_seconds, cadence_.cost_percent);
  std::fflush(stdout);
}

void Checkpointer::finish() {
  if (pending_) commit_pending();
}

void Checkpointer::start_save(const TrainingPosition& position) {
  if (pending_) commit_pending();  // a second save waits for the first
  const Clock::time_point started = Clock::now();
  step_dirty_ = true;
  last_save_step_ = position.step;
  const ByteRange range = shard_range(layout_.total_bytes(), dp_.rank(), dp_.size());
  std::vector<std::uint8_t> bytes = writer_.take_buffer();  // the last save's, when there was one
  snapshot(layout_, range, bytes);                          // the state as of this step boundary
  dp_.gather_state(layout_, range, bytes);  // ZeRO-1: the optimizer state other ranks hold
  snapshot_seconds_ = seconds_between(started, Clock::now());
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

// Every rank: its shard is durable (collect), the records go to rank 0, which commits. A full
// disk on any rank (every rank learns it from the gathered records) leaves the checkpoint
// uncommitted and removed, and the previous one the latest.
bool Checkpointer::commit_pending(bool final) {
  const Clock::time_point started = Clock::now();
  step_dirty_ = true;
  std::string no_space;  // this rank's shard met a full disk
  ShardRecord mine;
  try {
    mine = writer_.collect();
  } catch (const checkpoint_io::NoSpaceError& e) {
    no_space = e.what();
  }
  pending_ = false;
  fault_.maybe_fail(Fault::Point::after_shard_write, pending_step_, dp_.rank());
  const std::vector<std::int64_t> all =
      dp_.all_gather({mine.range.begin, mine.range.end, static_cast<std::int64_t>(mine.crc32c),
                      no_space.empty() ? 0 : 1},
                     "checkpoint shards");
  const fs::path dir = fs::path(root_) / checkpoint_dir_name(pending_step_);
  std::string failure;
  for (int r = 0; r < dp_.size() && failure.empty(); ++r) {
    if (all[4 * static_cast<std::size_t>(r) + 3] != 0) {
      // Every rank takes part (each knows a shard failed), rank 0 says the first one's error.
      const std::vector<std::string> errors = dp_.gather_text(no_space);
      failure = "rank " + std::to_string(r) + ": " + errors[static_cast<std::size_t>(r)];
    }
  }
  if (failure.empty() && dp_.lead()) {
    std::vector<ShardRecord> shards;
    for (int r = 0; r < dp_.size(); ++r) {
      const std::size_t at = 4 * static_cast<std::size_t>(r);
      ShardRecord record;
      record.file = shard_file_name(r, dp_.size());
      record.range = {all[at], all[at + 1]};
      record.crc32c = static_cast<std::uint32_t>(all[at + 2]);
      shards.push_back(record);
    }
    try {
      commit_checkpoint(root_, pending_step_, layout_, pending_meta_, shards, options_.keep);
    } catch (const checkpoint_io::NoSpaceError& e) {
      // Committed once COMMIT is there (only `latest` or the pruning failed): resume finds it.
      std::error_code ec;
      if (!fs::exists(dir / checkpoint_manifest::kCommitFile, ec)) failure = e.what();
    }
  }
  if (!failure.empty()) {
    if (dp_.lead()) {
      std::error_code ec;
      fs::remove_all(dir, ec);  // every rank's write is over: give its space back
      const std::string previous =
          saved_ ? checkpoint_dir_name(saved_step_) + " is still the latest checkpoint"
                 : "there is no checkpoint yet";
      std::fprintf(stderr,
                   "ruche: WARNING: checkpoint %s was NOT saved, the disk is full (%s); %s%s\n",
                   checkpoint_dir_name(pending_step_).c_str(), failure.c_str(), previous.c_str(),
                   final ? "" : "; training goes on and the next checkpoint tries again");
      std::fflush(stderr);
    }
    return false;
  }
  saved_ = true;
  saved_step_ = pending_step_;
  if (options_.auto_percent > 0) {
    save_samples_.push_back(snapshot_seconds_ + writer_.last_seconds() +
                            seconds_between(started, Clock::now()));
    if (save_samples_.size() > 5) save_samples_.pop_front();
    choose_auto_cadence("the save time changed");
  }
  if (dp_.lead()) {
    std::printf("checkpoint %s committed\n", dir.string().c_str());
    std::fflush(stdout);
  }
  return true;
}

}  // namespace ruche
