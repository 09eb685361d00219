// manifest.pb: the checkpoint's table of contents (proto::CheckpointManifest), to and from the
// structs of checkpoint.h.
#pragma once

#include <string>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/proto/ruche.pb.h"

namespace ruche::checkpoint_manifest {

constexpr std::uint32_t kFormatVersion = 1;
constexpr const char* kManifestFile = "manifest.pb";
constexpr const char* kCommitFile = "COMMIT";
constexpr const char* kLatestFile = "latest";

proto::CheckpointManifest make_manifest(std::int64_t step, const StateLayout& layout,
                                        const CheckpointMeta& meta,
                                        const std::vector<ShardRecord>& shards);

// Reads DIR/manifest.pb: "DIR/manifest.pb: missing", "...: cannot parse (N bytes)", "...: format
// version V, this ruche reads 1", and a manifest whose tensors do not lie end to end in its state
// or whose net hash is not its tensors' are errors naming the file.
proto::CheckpointManifest read_manifest(const std::string& dir);
// The same checks on manifest bytes already read; `file` names them in errors.
proto::CheckpointManifest parse_manifest(const std::string& bytes, const std::string& file);

CheckpointMeta meta_of(const proto::CheckpointManifest& m);
std::vector<StateTensor> tensors_of(const proto::CheckpointManifest& m);
std::vector<ShardRecord> shards_of(const proto::CheckpointManifest& m);

// "[16,6,5,5]"
std::string shape_text(const Shape& shape);
// "0x1234abcd"; "crc32c 0x.. does not match the manifest's 0x.."
std::string hex32(std::uint32_t v);
std::string crc_mismatch(std::uint32_t got, std::uint32_t manifest);

// Reads shard `shard` of checkpoint `dir` into `out` (its range's size), checking its size and
// crc32c: "DIR/FILE: missing", "...: truncated: X of Y bytes", "...: " + crc_mismatch(...).
void read_shard(const std::string& dir, const ShardRecord& shard, std::uint8_t* out);

}  // namespace ruche::checkpoint_manifest
