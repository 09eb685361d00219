// Reading a committed checkpoint back, every byte verified, and restoring it into a net and
// optimizer of any world size.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/file_io.h"
#include "engine/checkpoint/manifest.h"
#include "engine/error.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;
using checkpoint_manifest::crc_mismatch;
using checkpoint_manifest::shape_text;

// The shards sorted by range, which must tile [0, total) exactly.
std::vector<ShardRecord> tiling(std::vector<ShardRecord> shards, std::int64_t total,
                                const std::string& manifest_file) {
  std::sort(shards.begin(), shards.end(), [](const ShardRecord& a, const ShardRecord& b) {
    return a.range.begin < b.range.begin;
  });
  std::int64_t at = 0;
  for (const auto& s : shards) {
    RUCHE_REQUIRE(s.range.begin == at && s.range.end >= s.range.begin)
        << manifest_file << ": the shards do not tile the state [0, " << total << "): " << s.file
        << " holds [" << s.range.begin << ", " << s.range.end << "), expected it to "
        << "start at " << at;
    at = s.range.end;
  }
  RUCHE_REQUIRE(at == total) << manifest_file << ": the shards do not tile the state [0, " << total
                             << "): they end at byte " << at;
  return shards;
}

std::string tensor_text(const StateTensor& t) { return t.name + " " + shape_text(t.shape); }

}  // namespace

// Reads a shard file into `out` (its range's size), checking size and crc32c.
void checkpoint_manifest::read_shard(const std::string& dir, const ShardRecord& shard,
                                     std::uint8_t* out) {
  const std::string file = (fs::path(dir) / shard.file).string();
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) RUCHE_FAIL() << file << ": missing";
    RUCHE_FAIL() << file << ": cannot open: " << checkpoint_io::error_text(errno);
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  RUCHE_REQUIRE(::fstat(fd, &st) == 0)
      << file << ": cannot stat: " << checkpoint_io::error_text(errno);
  const std::int64_t want = shard.range.size();
  RUCHE_REQUIRE(st.st_size >= want)
      << file << ": truncated: " << st.st_size << " of " << want << " bytes";
  RUCHE_REQUIRE(st.st_size == want)
      << file << ": " << st.st_size << " bytes, the manifest says " << want;
  std::int64_t done = 0;
  while (done < want) {
    const ssize_t n = ::read(fd, out + done, static_cast<std::size_t>(want - done));
    if (n < 0 && errno == EINTR) continue;
    RUCHE_REQUIRE(n > 0) << file << ": read failed after " << done << " of " << want << " bytes"
                         << (n < 0 ? ": " + checkpoint_io::error_text(errno) : std::string());
    done += n;
  }
  const std::uint32_t crc = crc32c(out, static_cast<std::size_t>(want));
  RUCHE_REQUIRE(crc == shard.crc32c) << file << ": " << crc_mismatch(crc, shard.crc32c);
}

LoadedCheckpoint load_checkpoint(const std::string& dir) {
  std::error_code ec;
  RUCHE_REQUIRE(fs::is_directory(dir, ec)) << dir << ": no such checkpoint directory";
  const fs::path path(dir);
  const fs::path commit = path / checkpoint_manifest::kCommitFile;
  RUCHE_REQUIRE(fs::is_regular_file(commit, ec))
      << commit.string() << ": missing: the checkpoint is not committed";
  const proto::CheckpointManifest manifest = checkpoint_manifest::read_manifest(dir);
  const std::string manifest_file = (path / checkpoint_manifest::kManifestFile).string();
  const std::string commit_text = checkpoint_io::read_file(commit.string());
  RUCHE_REQUIRE(commit_text == std::to_string(manifest.step()) + "\n")
      << commit.string() << ": names another step than " << manifest_file << " (" << manifest.step()
      << ")";

  LoadedCheckpoint loaded;
  loaded.dir = dir;
  loaded.meta = checkpoint_manifest::meta_of(manifest);
  loaded.tensors = checkpoint_manifest::tensors_of(manifest);
  const std::int64_t total = manifest.total_bytes();
  const std::vector<ShardRecord> shards =
      tiling(checkpoint_manifest::shards_of(manifest), total, manifest_file);
  // Every shard file has its range's size before the state is allocated: a manifest may
  // announce any size (tests/fuzz); read_shard checks again as it reads.
  for (const auto& shard : shards) {
    const fs::path file = path / shard.file;
    const std::uintmax_t size = fs::file_size(file, ec);
    if (ec == std::errc::no_such_file_or_directory) RUCHE_FAIL() << file.string() << ": missing";
    RUCHE_REQUIRE(!ec) << file.string() << ": cannot open: " << ec.message();
    RUCHE_REQUIRE(size >= static_cast<std::uintmax_t>(shard.range.size()))
        << file.string() << ": truncated: " << size << " of " << shard.range.size() << " bytes";
  }
  loaded.state.resize(static_cast<std::size_t>(total));
  for (const auto& shard : shards) {
    checkpoint_manifest::read_shard(path.string(), shard, loaded.state.data() + shard.range.begin);
  }
  return loaded;
}

void restore(const LoadedCheckpoint& checkpoint, const StateLayout& layout) {
  const std::string manifest_file =
      (fs::path(checkpoint.dir) / checkpoint_manifest::kManifestFile).string();
  const auto& here = layout.tensors;
  const auto& there = checkpoint.tensors;
  const std::size_t n = std::max(here.size(), there.size());
  for (std::size_t i = 0; i < n; ++i) {
    const bool same = i < here.size() && i < there.size() && here[i].name == there[i].name &&
                      here[i].shape == there[i].shape && here[i].dtype == there[i].dtype &&
                      here[i].offset == there[i].offset;
    if (same) continue;
    RUCHE_FAIL() << "a checkpoint of another net: tensor " << i << " is "
                 << (i < here.size() ? tensor_text(here[i]) : std::string("absent")) << " here and "
                 << (i < there.size() ? tensor_text(there[i]) : std::string("absent")) << " in "
                 << manifest_file;
  }
  RUCHE_REQUIRE(checkpoint.meta.net_hash == state_hash(layout))
      << "a checkpoint of another net: " << manifest_file << " has net hash " << std::hex
      << checkpoint.meta.net_hash << ", this net " << state_hash(layout);
  const std::int64_t total = layout.total_bytes();
  RUCHE_REQUIRE(static_cast<std::int64_t>(checkpoint.state.size()) == total)
      << "a checkpoint of another net: " << manifest_file << " holds " << checkpoint.state.size()
      << " bytes of state, this net and optimizer " << total;

  std::int64_t at = 0;
  for (const auto& region : layout.regions) {
    const std::size_t bytes = region.tensor.nbytes();  // held: all, or a ZeRO-1 range
    const std::int64_t region_at = at;
    at += region.bytes();
    if (bytes == 0) continue;
    const std::uint8_t* src = checkpoint.state.data() + region_at +
                              region.held_begin * static_cast<std::int64_t>(sizeof(float));
    if (region.tensor.device().is_cpu()) {
      std::memcpy(region.tensor.raw_data(), src, bytes);
    } else {
      const Tensor host = Tensor::from_blob(const_cast<std::uint8_t*>(src), region.tensor.shape(),
                                            region.tensor.dtype());
      Tensor dst = region.tensor;
      dst.copy_from(host);
    }
  }
}

}  // namespace ruche
