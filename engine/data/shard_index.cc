#include "engine/data/shard_index.h"

#include <charconv>
#include <filesystem>
#include <sstream>

#include "engine/checkpoint/file_io.h"
#include "engine/error.h"

namespace ruche {
namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
    fields.push_back(line.substr(start, tab - start));
  }
  fields.push_back(line.substr(start));
  return fields;
}

std::uint64_t parse_count(const std::string& field, const std::string& where) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
  RUCHE_REQUIRE(ec == std::errc() && end == field.data() + field.size())
      << where << ": expected a number, got '" << field << "'";
  return v;
}

}  // namespace

std::vector<ShardInfo> ShardIndex::split(const std::string& name) const {
  std::vector<ShardInfo> out;
  for (const ShardInfo& s : shards) {
    if (s.split == name) out.push_back(s);
  }
  return out;
}

ShardIndex read_shard_index(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string index_path = (fs::path(dir) / kShardIndexFile).string();
  const std::string labels_path = (fs::path(dir) / kShardLabelsFile).string();
  RUCHE_REQUIRE(fs::exists(index_path))
      << index_path << ": missing (`ruche index " << dir << "` writes it; `ruche convert` too)";
  const std::string labels_text = checkpoint_io::read_file(labels_path);
  ShardIndex index =
      parse_shard_index(checkpoint_io::read_file(index_path), index_path, labels_text, labels_path);
  index.dir = dir;
  return index;
}

ShardIndex parse_shard_index(const std::string& index_text, const std::string& index_path,
                             const std::string& labels_text, const std::string& labels_path) {
  ShardIndex index;
  std::istringstream labels(labels_text);
  for (std::string line; std::getline(labels, line);) {
    if (!line.empty()) index.classes.push_back(line);
  }
  RUCHE_REQUIRE(!index.classes.empty()) << labels_path << ": no class names";
  std::istringstream lines(index_text);
  int number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    const std::string where = index_path + ":" + std::to_string(number);
    const std::vector<std::string> f = split_tabs(line);
    RUCHE_REQUIRE(f.size() >= 4) << where << ": expected split, file, samples, end, offsets...";
    ShardInfo s;
    s.split = f[0];
    s.file = f[1];
    const std::uint64_t samples = parse_count(f[2], where);
    s.end = parse_count(f[3], where);
    RUCHE_REQUIRE(f.size() == 4 + samples)
        << where << ": " << samples << " samples but " << f.size() - 4 << " offsets";
    for (std::size_t i = 4; i < f.size(); ++i) {
      s.offsets.push_back(parse_count(f[i], where));
      RUCHE_REQUIRE(s.offsets.back() < s.end && (i == 4 || s.offsets.back() > s.offsets[i - 5]))
          << where << ": offsets must increase and lie below the end " << s.end;
    }
    index.shards.push_back(std::move(s));
  }
  return index;
}

void write_shard_index(const ShardIndex& index) {
  namespace fs = std::filesystem;
  std::ostringstream text;
  text << "# ruche shard index 1: split, file, samples, data end, byte offset "
          "of each sample\n";
  for (const ShardInfo& s : index.shards) {
    text << s.split << '\t' << s.file << '\t' << s.samples() << '\t' << s.end;
    for (std::uint64_t o : s.offsets) text << '\t' << o;
    text << '\n';
  }
  std::ostringstream labels;
  for (const std::string& c : index.classes) labels << c << '\n';
  checkpoint_io::write_file_durably((fs::path(index.dir) / kShardLabelsFile).string(),
                                    labels.str());
  checkpoint_io::write_file_durably((fs::path(index.dir) / kShardIndexFile).string(), text.str());
}

}  // namespace ruche
