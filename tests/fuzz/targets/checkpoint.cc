// A whole checkpoint directory as load_checkpoint reads it (--resume, ruche inspect). The input
// is a manifest and a shard: 4 bytes (little-endian) of manifest length, the manifest.pb bytes,
// and the rest is the file shard-00000-of-00001.bin. COMMIT names the manifest's step when it
// parses (else "0"); shards the manifest names otherwise are missing files.
#include <algorithm>
#include <string>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/manifest.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(checkpoint) {
  if (size < 4) return;
  const std::size_t length = static_cast<std::size_t>(data[0]) | (std::size_t{data[1]} << 8) |
                             (std::size_t{data[2]} << 16) | (std::size_t{data[3]} << 24);
  const std::size_t manifest_size = std::min(length, size - 4);
  const std::string manifest(reinterpret_cast<const char*>(data) + 4, manifest_size);
  const std::string shard(reinterpret_cast<const char*>(data) + 4 + manifest_size,
                          size - 4 - manifest_size);
  ruche::proto::CheckpointManifest parsed;
  const std::int64_t step = parsed.ParseFromString(manifest) ? parsed.step() : 0;
  const ruche::fuzz::TempDir dir;
  dir.write(ruche::checkpoint_manifest::kManifestFile, manifest);
  dir.write(ruche::checkpoint_manifest::kCommitFile, std::to_string(step) + "\n");
  dir.write("shard-00000-of-00001.bin", shard);
  ruche::load_checkpoint(dir.path());
}
