// Committing a checkpoint (manifest.pb, COMMIT, latest), keeping the last K, and finding the
// committed ones.
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <optional>
#include <system_error>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/file_io.h"
#include "engine/checkpoint/manifest.h"
#include "engine/error.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;
using checkpoint_manifest::kCommitFile;
using checkpoint_manifest::kLatestFile;
using checkpoint_manifest::kManifestFile;

// The step of a directory named "step-<digits>", or none.
std::optional<std::int64_t> step_of(const std::string& name) {
  const std::string prefix = "step-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return {};
  std::int64_t step = 0;
  const char* first = name.data() + prefix.size();
  const char* last = name.data() + name.size();
  const auto [end, ec] = std::from_chars(first, last, step);
  if (ec != std::errc() || end != last) return {};
  return step;
}

struct StepDir {
  std::int64_t step;
  fs::path path;
  bool committed;
};

std::vector<StepDir> step_dirs(const std::string& ckpt_root) {
  std::vector<StepDir> out;
  std::error_code ec;
  if (!fs::is_directory(ckpt_root, ec)) return out;
  for (const auto& entry : fs::directory_iterator(ckpt_root, ec)) {
    std::error_code ec2;
    if (!entry.is_directory(ec2)) continue;
    const auto step = step_of(entry.path().filename().string());
    if (!step) continue;
    out.push_back({*step, entry.path(), fs::is_regular_file(entry.path() / kCommitFile, ec2)});
  }
  std::sort(out.begin(), out.end(),
            [](const StepDir& a, const StepDir& b) { return a.step > b.step; });
  return out;
}

// Removes a checkpoint directory: COMMIT first, so a crash half way leaves an uncommitted
// directory (which resume ignores), never a committed one with shards missing.
void remove_checkpoint(const fs::path& dir) {
  std::error_code ec;
  fs::remove(dir / kCommitFile, ec);
  fs::remove_all(dir, ec);  // best effort: a failure leaves a directory the next commit retries
}

}  // namespace

void commit_checkpoint(const std::string& ckpt_root, std::int64_t step, const StateLayout& layout,
                       const CheckpointMeta& meta, const std::vector<ShardRecord>& shards,
                       int keep) {
  RUCHE_CHECK(meta.net_hash == 0 || meta.net_hash == state_hash(layout))
      << "CheckpointMeta::net_hash is not state_hash of the layout";
  const fs::path dir = fs::path(ckpt_root) / checkpoint_dir_name(step);
  checkpoint_io::make_directories(dir.string());

  const proto::CheckpointManifest manifest =
      checkpoint_manifest::make_manifest(step, layout, meta, shards);
  std::string bytes;
  RUCHE_CHECK(manifest.SerializeToString(&bytes)) << "serializing the checkpoint manifest";
  checkpoint_io::write_file_durably((dir / kManifestFile).string(), bytes);
  checkpoint_io::write_file_durably((dir / kCommitFile).string(), std::to_string(step) + "\n");
  checkpoint_io::fsync_directory(ckpt_root);  // the step directory's own entry
  checkpoint_io::write_file_durably((fs::path(ckpt_root) / kLatestFile).string(),
                                    checkpoint_dir_name(step) + "\n");

  // Keep the newest `keep` committed checkpoints (this one among them); drop older uncommitted
  // ones (a crash mid-save). Newer uncommitted directories may be another save in flight.
  int kept = 0;
  for (const StepDir& d : step_dirs(ckpt_root)) {
    if (d.committed) {
      if (keep <= 0 || kept < keep || d.step == step) {
        ++kept;
        continue;
      }
      remove_checkpoint(d.path);
    } else if (d.step < step) {
      remove_checkpoint(d.path);
    }
  }
}

std::vector<std::string> committed_checkpoints(const std::string& ckpt_root) {
  std::vector<std::string> out;
  for (const StepDir& d : step_dirs(ckpt_root)) {
    if (d.committed) out.push_back(d.path.string());
  }
  return out;
}

std::string find_checkpoint(const std::string& path) {
  std::error_code ec;
  RUCHE_REQUIRE(fs::exists(path, ec)) << path << ": no such checkpoint, ckpt or run directory";
  if (fs::is_regular_file(fs::path(path) / kManifestFile, ec)) return path;
  for (const fs::path& root : {fs::path(path), fs::path(path) / "ckpt"}) {
    const auto committed = committed_checkpoints(root.string());
    if (!committed.empty()) return committed.front();
  }
  RUCHE_FAIL() << path << ": no committed checkpoint (expected a checkpoint directory with "
               << kManifestFile << ", or a run or ckpt directory holding step-* checkpoints)";
}

}  // namespace ruche
