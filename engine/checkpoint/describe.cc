// `ruche inspect`: a checkpoint described in text, every shard checked, nothing thrown for a bad
// shard (that is what the listing is for).
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/file_io.h"
#include "engine/checkpoint/manifest.h"
#include "engine/error.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;
using checkpoint_manifest::hex32;
using checkpoint_manifest::shape_text;

// "ok", "missing", "truncated: 10 of 20 bytes", "crc32c 0x.. does not match the manifest's 0x..".
std::string shard_status(const fs::path& dir, const ShardRecord& shard) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(shard.range.size()));
  try {
    checkpoint_manifest::read_shard(dir.string(), shard, bytes.data());
  } catch (const Error& e) {
    const std::string what = e.what();
    const std::string prefix = (dir / shard.file).string() + ": ";
    return what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
  }
  return "ok";
}

std::string human_bytes(std::int64_t bytes) {
  char text[32];
  if (bytes >= (1ll << 30)) {
    std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1ll << 30));
  } else if (bytes >= (1 << 20)) {
    std::snprintf(text, sizeof text, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  } else if (bytes >= (1 << 10)) {
    std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / (1 << 10));
  } else {
    std::snprintf(text, sizeof text, "%lld B", static_cast<long long>(bytes));
  }
  return text;
}

}  // namespace

std::string describe_checkpoint(const std::string& dir) {
  const fs::path path(dir);
  std::error_code ec;
  const bool committed = fs::is_regular_file(path / checkpoint_manifest::kCommitFile, ec);
  const proto::CheckpointManifest m = checkpoint_manifest::read_manifest(dir);
  const CheckpointMeta meta = checkpoint_manifest::meta_of(m);
  const TrainingPosition& p = meta.position;
  std::ostringstream out;
  out << "checkpoint " << dir << (committed ? " (committed)" : " (NOT committed: COMMIT missing)")
      << "\n";
  out << "  step " << p.step << ", epoch " << p.epoch << ", " << p.samples_in_epoch
      << " samples into the epoch, " << p.micro_batches << " micro-batches, " << p.skipped_steps
      << " skipped steps\n";
  out << "  written by " << meta.world_size << (meta.world_size == 1 ? " rank" : " ranks")
      << " with " << meta.threads << " threads each; " << p.elapsed_seconds
      << " s of training before it\n";
  if (std::isnan(p.best)) {
    out << "  early stopping: no validation value yet\n";
  } else {
    out << "  early stopping: best " << p.best << " in epoch " << p.best_epoch << ", "
        << p.epochs_without_gain << " epochs without gain\n";
  }
  char hash[24];
  std::snprintf(hash, sizeof hash, "0x%016llx", static_cast<unsigned long long>(meta.net_hash));
  out << "  state " << m.total_bytes() << " bytes (" << human_bytes(m.total_bytes())
      << "), net hash " << hash << "\n";
  out << "regions:\n";
  for (const auto& r : m.regions()) {
    out << "  " << r.name() << "  [" << r.offset() << ", " << r.offset() + r.bytes() << ")\n";
  }
  out << "tensors (" << m.tensors_size() << "):\n";
  const std::vector<StateTensor> tensors = checkpoint_manifest::tensors_of(m);
  std::size_t name_width = 0, shape_width = 0;
  for (const auto& t : tensors) {
    name_width = std::max(name_width, t.name.size());
    shape_width = std::max(shape_width, shape_text(t.shape).size());
  }
  for (const auto& t : tensors) {
    out << "  " << std::left << std::setw(static_cast<int>(name_width)) << t.name << "  "
        << std::setw(static_cast<int>(shape_width)) << shape_text(t.shape) << std::right << " "
        << dtype_name(t.dtype) << "  " << t.bytes << " bytes at " << t.offset << "\n";
  }
  out << "shards (" << m.shards_size() << "):\n";
  int bad = 0;
  for (const auto& s : checkpoint_manifest::shards_of(m)) {
    const std::string status = shard_status(path, s);
    bad += status != "ok";
    out << "  " << s.file << "  [" << s.range.begin << ", " << s.range.end << ")  crc32c "
        << hex32(s.crc32c) << "  " << status << "\n";
  }
  if (!committed) {
    out << "not usable for resume: no COMMIT\n";
  } else if (bad) {
    out << "not usable for resume: " << bad << (bad == 1 ? " shard" : " shards") << " bad\n";
  } else {
    out << "usable for resume\n";
  }
  return out.str();
}

}  // namespace ruche
