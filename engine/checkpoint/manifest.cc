// manifest.pb to and from the checkpoint structs, with the checks a manifest must pass.
#include "engine/checkpoint/manifest.h"

#include <cstdio>
#include <filesystem>

#include "engine/checkpoint/file_io.h"
#include "engine/error.h"

namespace ruche::checkpoint_manifest {
namespace {

namespace fs = std::filesystem;

DType dtype_of(const std::string& name, const std::string& file) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8}) {
    if (dtype_name(t) == name) return t;
  }
  RUCHE_FAIL() << file << ": unknown dtype '" << name << "'";
}

}  // namespace

std::string shape_text(const Shape& shape) {
  std::string s = "[";
  for (int i = 0; i < shape.ndim(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

proto::CheckpointManifest make_manifest(std::int64_t step, const StateLayout& layout,
                                        const CheckpointMeta& meta,
                                        const std::vector<ShardRecord>& shards) {
  proto::CheckpointManifest m;
  m.set_format_version(kFormatVersion);
  const TrainingPosition& p = meta.position;
  m.set_step(step);
  m.set_epoch(p.epoch);
  m.set_samples_in_epoch(p.samples_in_epoch);
  m.set_micro_batches(p.micro_batches);
  m.set_skipped_steps(p.skipped_steps);
  m.set_best(p.best);
  m.set_best_epoch(p.best_epoch);
  m.set_epochs_without_gain(p.epochs_without_gain);
  m.set_elapsed_seconds(p.elapsed_seconds);
  if (!p.data_position.empty()) m.set_data_position(p.data_position);
  if (p.loss_scale > 0) {
    m.set_loss_scale(p.loss_scale);
    m.set_loss_scale_growth_tracker(p.loss_scale_growth_tracker);
  }
  m.set_world_size(meta.world_size);
  m.set_threads(meta.threads);
  m.set_net(meta.net);
  m.set_solver(meta.solver);
  if (!meta.preprocess.empty()) m.set_preprocess(meta.preprocess);
  m.set_net_hash(state_hash(layout));
  m.set_total_bytes(layout.total_bytes());
  std::int64_t offset = 0;
  for (const auto& r : layout.regions) {
    auto* region = m.add_regions();
    region->set_name(r.name);
    region->set_offset(offset);
    region->set_bytes(r.bytes());
    offset += region->bytes();
  }
  for (const auto& t : layout.tensors) {
    auto* entry = m.add_tensors();
    entry->set_name(t.name);
    for (const std::int64_t d : t.shape) entry->add_dims(d);
    entry->set_dtype(std::string(dtype_name(t.dtype)));
    entry->set_offset(t.offset);
    entry->set_bytes(t.bytes);
  }
  for (const auto& s : shards) {
    auto* shard = m.add_shards();
    shard->set_file(s.file);
    shard->set_begin(s.range.begin);
    shard->set_end(s.range.end);
    shard->set_crc32c(s.crc32c);
  }
  return m;
}

proto::CheckpointManifest read_manifest(const std::string& dir) {
  const std::string file = (fs::path(dir) / kManifestFile).string();
  return parse_manifest(checkpoint_io::read_file(file), file);
}

proto::CheckpointManifest parse_manifest(const std::string& bytes, const std::string& file) {
  proto::CheckpointManifest m;
  RUCHE_REQUIRE(m.ParseFromString(bytes))
      << file << ": cannot parse (" << bytes.size() << " bytes): not a checkpoint manifest";
  RUCHE_REQUIRE(m.format_version() == kFormatVersion)
      << file << ": format version " << m.format_version() << ", this ruche reads "
      << kFormatVersion;
  RUCHE_REQUIRE(m.total_bytes() >= 0) << file << ": negative state size " << m.total_bytes();
  std::int64_t offset = 0;
  for (const auto& t : m.tensors()) {
    RUCHE_REQUIRE(t.offset() == offset)
        << file << ": tensor " << t.name() << " at byte " << t.offset() << ", expected " << offset;
    Shape shape;
    RUCHE_REQUIRE(t.dims_size() <= Shape::kMaxDims)
        << file << ": tensor " << t.name() << " has " << t.dims_size() << " dimensions";
    const DType dtype = dtype_of(t.dtype(), file);
    std::int64_t bytes = static_cast<std::int64_t>(dtype_size(dtype));
    bool overflow = false;  // dims from a file: their product may not fit (tests/fuzz)
    for (const std::int64_t d : t.dims()) {
      RUCHE_REQUIRE(d >= 0) << file << ": tensor " << t.name() << ": negative dimension " << d;
      shape.push_back(d);
      overflow = overflow || __builtin_mul_overflow(bytes, d, &bytes);
    }
    RUCHE_REQUIRE(!overflow && t.bytes() == bytes)
        << file << ": tensor " << t.name() << " " << shape_text(shape) << " of " << t.bytes()
        << " bytes";
    RUCHE_REQUIRE(!__builtin_add_overflow(offset, t.bytes(), &offset))
        << file << ": the tensors hold more than 2^63 bytes";
  }
  RUCHE_REQUIRE(offset == m.total_bytes())
      << file << ": the tensors hold " << offset << " bytes, the state " << m.total_bytes();
  RUCHE_REQUIRE(m.net_hash() == state_hash(tensors_of(m)))
      << file << ": the net hash does not match the tensors listed";
  return m;
}

CheckpointMeta meta_of(const proto::CheckpointManifest& m) {
  CheckpointMeta meta;
  TrainingPosition& p = meta.position;
  p.step = m.step();
  p.epoch = m.epoch();
  p.samples_in_epoch = m.samples_in_epoch();
  p.micro_batches = m.micro_batches();
  p.skipped_steps = m.skipped_steps();
  p.best = m.has_best() ? m.best() : NAN;
  p.best_epoch = m.best_epoch();
  p.epochs_without_gain = m.epochs_without_gain();
  p.elapsed_seconds = m.elapsed_seconds();
  p.data_position = m.data_position();
  p.loss_scale = m.loss_scale();
  p.loss_scale_growth_tracker = m.loss_scale_growth_tracker();
  meta.world_size = m.world_size();
  meta.threads = m.threads();
  meta.net = m.net();
  meta.solver = m.solver();
  meta.net_hash = m.net_hash();
  meta.preprocess = m.preprocess();
  return meta;
}

std::vector<StateTensor> tensors_of(const proto::CheckpointManifest& m) {
  std::vector<StateTensor> out;
  out.reserve(static_cast<std::size_t>(m.tensors_size()));
  for (const auto& t : m.tensors()) {
    StateTensor s;
    s.name = t.name();
    for (const std::int64_t d : t.dims()) s.shape.push_back(d);
    s.dtype = DType::f32;
    for (DType d : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8}) {
      if (dtype_name(d) == t.dtype()) s.dtype = d;
    }
    s.offset = t.offset();
    s.bytes = t.bytes();
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<ShardRecord> shards_of(const proto::CheckpointManifest& m) {
  std::vector<ShardRecord> out;
  for (const auto& s : m.shards()) out.push_back({s.file(), {s.begin(), s.end()}, s.crc32c()});
  return out;
}

std::string hex32(std::uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

std::string crc_mismatch(std::uint32_t got, std::uint32_t manifest) {
  return "crc32c " + hex32(got) + " does not match the manifest's " + hex32(manifest);
}

}  // namespace ruche::checkpoint_manifest
