#include "engine/data/shard_loader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "engine/data/sampler.h"
#include "engine/data/tar.h"
#include "engine/data/webdataset.h"
#include "engine/error.h"

namespace ruche {
namespace {

// Layer numbers of the loader's streams (RngPurpose::sampler), apart from
// DistributedSampler's 0.
constexpr std::uint32_t kShardOrderLayer = 2;
constexpr std::uint32_t kBufferLayer = 3;  // + leg * 2^12; the rank is the stream's index

// Uniform integer in [0, n) from a 32-bit draw (bias below n / 2^32).
std::size_t draw_below(const RngStream& s, std::uint64_t position, std::size_t n) {
  return static_cast<std::size_t>((static_cast<std::uint64_t>(rng_bits(s, position)) * n) >> 32);
}

// WebDataset's shuffle buffer on a sequence of sample numbers.
std::vector<std::int64_t> buffered(const std::vector<std::int64_t>& in, std::int64_t size,
                                   const RngStream& s) {
  if (size <= 1) return in;
  std::vector<std::int64_t> out, buffer;
  out.reserve(in.size());
  buffer.reserve(static_cast<std::size_t>(std::min<std::int64_t>(size, in.size())));
  std::uint64_t draws = 0;
  for (std::int64_t v : in) {
    if (static_cast<std::int64_t>(buffer.size()) < size) {
      buffer.push_back(v);
      continue;
    }
    const std::size_t j = draw_below(s, draws++, buffer.size());
    out.push_back(buffer[j]);
    buffer[j] = v;
  }
  while (!buffer.empty()) {
    const std::size_t j = draw_below(s, draws++, buffer.size());
    out.push_back(buffer[j]);
    buffer[j] = buffer.back();
    buffer.pop_back();
  }
  return out;
}

std::int64_t steps_for(std::int64_t n, std::int64_t batch) { return (n + batch - 1) / batch; }

}  // namespace

// ---- position ----

std::string ShardPosition::encode() const {
  std::ostringstream s;
  s << "shards 1 epoch " << epoch << " samples " << samples << " legs " << legs.size();
  for (const Leg& l : legs) s << ' ' << l.world << ' ' << l.buffer << ' ' << l.taken;
  return s.str();
}

ShardPosition ShardPosition::decode(const std::string& text) {
  std::istringstream s(text);
  std::string w[5];
  int version = 0;
  std::size_t legs = 0;
  ShardPosition p;
  s >> w[0] >> version >> w[1] >> p.epoch >> w[2] >> p.samples >> w[3] >> legs;
  RUCHE_REQUIRE(s && w[0] == "shards" && version == 1 && w[1] == "epoch" && w[2] == "samples" &&
                w[3] == "legs" && legs < 1000000)
      << "shard loader position '" << text << "': unreadable";
  p.legs.resize(legs);
  for (Leg& l : p.legs) s >> l.world >> l.buffer >> l.taken;
  RUCHE_REQUIRE(s && !(s >> w[4])) << "shard loader position '" << text << "': unreadable";
  return p;
}

// ---- loader ----

ShardLoader::ShardLoader(const ShardIndex& index, const std::string& split, int rank, int world,
                         const ShardLoaderOptions& options)
    : classes_(index.classes),
      split_(split),
      rank_(rank),
      world_(world),
      options_(options) {
  RUCHE_CHECK(world > 0 && rank >= 0 && rank < world) << "rank " << rank << " of " << world;
  RUCHE_REQUIRE(options_.batch_size > 0)
      << "--batch-size " << options_.batch_size << ": expected > 0";
  RUCHE_REQUIRE(options_.threads > 0)
      << "data loader threads " << options_.threads << ": expected > 0";
  RUCHE_REQUIRE(options_.x_dtype == DType::f32 || options_.x_dtype == DType::u8)
      << "shard loader output " << dtype_name(options_.x_dtype) << ": expected f32 or u8";
  for (const ShardInfo& s : index.split(split)) {
    shards_.push_back(
        {(std::filesystem::path(index.dir) / s.file).string(), s.end, s.offsets, total_});
    total_ += s.samples();
  }
  RUCHE_REQUIRE(total_ > 0) << index.dir << ": no " << split << " samples in the shard index";
  RUCHE_REQUIRE(total_ >= world) << index.dir << ": " << total_ << " " << split
                                 << " samples cannot be split over " << world << " ranks";
  for (std::size_t i = 0; i < classes_.size(); ++i) {
    class_of_name_.emplace(classes_[i], static_cast<int>(i));
  }
  fds_.assign(shards_.size(), -1);
  ring_ = std::make_unique<BatchRing>(
      batch_shape(), options_.x_dtype, options_.threads, options_.depth, options_.device,
      [this](std::int64_t batch, int, BatchRing::Rows& rows) { return fill(batch, rows); });
}

ShardLoader::~ShardLoader() {
  ring_->stop();  // before the files its threads read are closed
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

Shape ShardLoader::batch_shape() const {
  const int c = options_.transform.crop;
  if (options_.transform.channels_last) return Shape{options_.batch_size, c, c, 3};
  return Shape{options_.batch_size, 3, c, c};
}

std::int64_t ShardLoader::steps_per_epoch() const {
  const std::int64_t longest = (total_ + world_ - 1) / world_;
  if (options_.pad) return steps_for(longest, options_.batch_size);
  const std::int64_t mine = (rank_ + 1) * total_ / world_ - rank_ * total_ / world_;
  return steps_for(mine, options_.batch_size);
}

std::vector<std::int64_t> ShardLoader::epoch_sequence(std::uint32_t epoch) const {
  std::vector<std::int64_t> order(shards_.size());
  std::iota(order.begin(), order.end(), 0);
  if (options_.train) {
    shuffle_in_place(order,
                     RngStream{options_.seed, RngPurpose::sampler, epoch, 0, kShardOrderLayer});
  }
  std::vector<std::int64_t> sequence;
  sequence.reserve(static_cast<std::size_t>(total_));
  for (std::int64_t s : order) {
    const Shard& shard = shards_[static_cast<std::size_t>(s)];
    for (std::size_t i = 0; i < shard.offsets.size(); ++i) {
      sequence.push_back(shard.base + static_cast<std::int64_t>(i));
    }
  }
  return sequence;
}

std::vector<std::int64_t> ShardLoader::leg_sequence(const std::vector<std::int64_t>& pool,
                                                    std::uint32_t epoch, std::size_t leg,
                                                    const ShardPosition::Leg& l, int rank) const {
  const auto n = static_cast<std::int64_t>(pool.size());
  const std::int64_t begin = rank * n / l.world, end = (rank + 1) * n / l.world;
  std::vector<std::int64_t> part(pool.begin() + begin, pool.begin() + end);
  if (!options_.train) return part;
  const RngStream stream{options_.seed, RngPurpose::sampler, epoch,
                         static_cast<std::uint32_t>(rank),
                         kBufferLayer + (static_cast<std::uint32_t>(leg) << 12)};
  return buffered(part, l.buffer, stream);
}

std::vector<std::int64_t> ShardLoader::pool_after(
    std::uint32_t epoch, const std::vector<ShardPosition::Leg>& legs) const {
  std::vector<std::int64_t> pool = epoch_sequence(epoch);
  for (std::size_t j = 0; j + 1 < legs.size(); ++j) {
    const ShardPosition::Leg& l = legs[j];
    RUCHE_REQUIRE(l.world > 0 && l.taken >= 0 && l.buffer >= 0)
        << "shard loader position: leg " << j << " has world " << l.world << ", taken " << l.taken;
    std::vector<char> consumed(static_cast<std::size_t>(total_), 0);
    for (int r = 0; r < l.world; ++r) {
      const std::vector<std::int64_t> seq = leg_sequence(pool, epoch, j, l, r);
      const auto taken = std::min<std::size_t>(static_cast<std::size_t>(l.taken), seq.size());
      for (std::size_t k = 0; k < taken; ++k) consumed[static_cast<std::size_t>(seq[k])] = 1;
    }
    std::erase_if(pool, [&](std::int64_t s) { return consumed[static_cast<std::size_t>(s)]; });
  }
  return pool;
}

std::vector<std::int64_t> ShardLoader::remaining(const ShardPosition& at) const {
  std::vector<ShardPosition::Leg> legs = at.legs;
  legs.push_back({world_, 0, 0});  // an empty leg after them: pool_after replays them all
  return pool_after(at.epoch, legs);
}

void ShardLoader::start_epoch(std::uint32_t epoch, std::int64_t step) {
  RUCHE_REQUIRE(step == 0) << "shards resume from their saved position, not from step " << step;
  ShardPosition at;
  at.epoch = epoch;
  at.samples = total_;
  start_epoch(at);
}

void ShardLoader::start_epoch(const ShardPosition& at) {
  ring_->stop();
  RUCHE_REQUIRE(at.samples == total_) << "resume: the position was saved over " << at.samples << " "
                                      << split_ << " samples, the shards hold " << total_;
  const std::int64_t buffer = options_.train ? options_.shuffle_buffer : 0;
  const ShardPosition::Leg here{world_, buffer, 0};
  start_ = at;
  // Continue the last leg when it ran at this world size and buffer; else start
  // a new one.
  const bool same =
      !at.legs.empty() && at.legs.back().world == world_ && at.legs.back().buffer == buffer;
  if (!same) start_.legs.push_back(here);
  const std::vector<std::int64_t> pool = pool_after(at.epoch, start_.legs);
  const std::size_t leg = start_.legs.size() - 1;
  const std::int64_t taken = start_.legs.back().taken;
  // Every rank's sequence length, for the step count the longest one needs.
  const auto n = static_cast<std::int64_t>(pool.size());
  const std::int64_t longest = (n + world_ - 1) / world_;
  const std::vector<std::int64_t> mine = leg_sequence(pool, at.epoch, leg, here, rank_);
  const auto length = static_cast<std::int64_t>(mine.size());
  const std::int64_t b = options_.batch_size;
  steps_ = options_.pad ? steps_for(std::max<std::int64_t>(0, longest - taken), b)
                        : steps_for(std::max<std::int64_t>(0, length - taken), b);
  // Repeats come from the rank's own sequence, or from the whole pool for a
  // rank with none (a resume near the end of an epoch on more ranks than
  // samples are left).
  const std::vector<std::int64_t>& repeats = mine.empty() ? pool : mine;
  sequence_.clear();
  const std::int64_t count = options_.pad ? steps_ * b : std::max<std::int64_t>(0, length - taken);
  for (std::int64_t k = 0; k < count; ++k) {
    const std::int64_t p = taken + k;
    sequence_.push_back(p < length ? mine[static_cast<std::size_t>(p)]
                                   : -1 - repeats[static_cast<std::size_t>(p) % repeats.size()]);
  }
  ring_->start(0, steps_);
}

ShardPosition ShardLoader::position() const {
  ShardPosition p = start_;
  const std::int64_t done = std::min<std::int64_t>(ring_->next_batch() * options_.batch_size,
                                                   static_cast<std::int64_t>(sequence_.size()));
  if (!p.legs.empty()) p.legs.back().taken += done;
  return p;
}

int ShardLoader::shard_fd(std::size_t shard) const {
  std::lock_guard<std::mutex> lock(fd_mutex_);
  if (fds_[shard] < 0) {
    const std::string& path = shards_[shard].path;
    fds_[shard] = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    RUCHE_REQUIRE(fds_[shard] >= 0) << path << ": cannot open (" << std::strerror(errno) << ")";
  }
  return fds_[shard];
}

void ShardLoader::read_sample(std::int64_t sample, Tensor& x, std::int64_t row,
                              std::int32_t* label) const {
  // The shard holding `sample`: the last one whose base is at most it.
  const auto it = std::upper_bound(shards_.begin(), shards_.end(), sample,
                                   [](std::int64_t v, const Shard& s) { return v < s.base; });
  const std::size_t s = static_cast<std::size_t>(it - shards_.begin()) - 1;
  const Shard& shard = shards_[s];
  const auto i = static_cast<std::size_t>(sample - shard.base);
  const std::uint64_t begin = shard.offsets[i];
  const std::uint64_t end = i + 1 < shard.offsets.size() ? shard.offsets[i + 1] : shard.end;
  std::vector<std::uint8_t> bytes(end - begin);
  const int fd = shard_fd(s);
  for (std::size_t got = 0; got < bytes.size();) {
    const ssize_t n =
        ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(begin + got));
    if (n < 0 && errno == EINTR) continue;
    RUCHE_REQUIRE(n > 0) << shard.path << ": truncated at byte " << begin + got
                         << " (the index has a sample at byte " << begin << " to " << end << ")";
    got += static_cast<std::size_t>(n);
  }
  // The members of the sample's key from `begin` on (webdataset's grouping): the first image,
  // the label of the best rank (.cls, .json, .txt); a later key ends the sample (an incomplete
  // sample the index skipped may follow it in the range).
  TarMember member, image;
  bool have_image = false;
  int label_rank_taken = 3;
  std::uint64_t at = 0, consumed = 0;
  std::int64_t cls = -1;
  std::string key, k, ext;
  while (at < bytes.size() && parse_tar_member(bytes.data() + at, bytes.size() - at, shard.path,
                                               begin + at, &member, &consumed)) {
    at += consumed;
    if (!member.regular() || !webdataset_key(member.name, &k, &ext)) continue;
    if (key.empty()) key = k;
    if (k != key) break;
    if (is_image_extension(ext) && !have_image) {
      image = std::move(member);
      have_image = true;
      continue;
    }
    const int rank = label_rank(ext);
    if (rank < 0 || rank >= label_rank_taken) continue;
    const std::string what =
        shard.path + ": " + member.name + " at byte " + std::to_string(member.offset);
    const SampleLabel l = parse_label(ext, member.data.data(), member.data.size(), what);
    if (!l.found) continue;
    if (l.index >= 0) {
      RUCHE_REQUIRE(l.index < static_cast<std::int64_t>(classes_.size()))
          << what << ": label " << l.index << " is not below the " << classes_.size() << " classes";
      cls = l.index;
    } else {
      const auto found = class_of_name_.find(l.name);
      RUCHE_REQUIRE(found != class_of_name_.end())
          << what << ": label '" << l.name << "' is not a class name of labels.txt";
      cls = found->second;
    }
    label_rank_taken = rank;
  }
  RUCHE_REQUIRE(have_image && label_rank_taken < 3)
      << shard.path << ": the sample at byte " << begin << " lacks "
      << (have_image ? "a label (.cls, .json, .txt)" : "an image (.jpg, .jpeg, .png)")
      << " (is the index from these shards?)";
  const TarMember& jpeg = image;
  const RngStream stream{options_.seed, RngPurpose::augment, start_.epoch,
                         static_cast<std::uint32_t>(sample), 0};
  const std::string what = shard.path + ":" + jpeg.name;
  const std::int64_t at_row = row * (x.numel() / x.shape()[0]);
  if (x.dtype() == DType::u8) {
    jpeg_to_sample(jpeg.data.data(), jpeg.data.size(), what, options_.train, options_.transform,
                   stream, x.data<std::uint8_t>() + at_row);
  } else {
    jpeg_to_sample(jpeg.data.data(), jpeg.data.size(), what, options_.train, options_.transform,
                   stream, x.data<float>() + at_row);
  }
  *label = static_cast<std::int32_t>(cls);
}

std::int64_t ShardLoader::fill(std::int64_t batch, BatchRing::Rows& rows) const {
  const std::int64_t b = options_.batch_size;
  const std::int64_t first = batch * b;
  const std::int64_t count = std::min(b, static_cast<std::int64_t>(sequence_.size()) - first);
  std::int32_t* y = rows.y.data<std::int32_t>();
  rows.samples.resize(static_cast<std::size_t>(count));
  for (std::int64_t j = 0; j < count; ++j) {
    const std::int64_t v = sequence_[static_cast<std::size_t>(first + j)];
    const std::int64_t sample = v >= 0 ? v : -1 - v;
    read_sample(sample, rows.x, j, y + j);
    rows.samples[static_cast<std::size_t>(j)] = v >= 0 ? v : -1;
  }
  return count;
}

}  // namespace ruche
