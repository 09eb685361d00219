// A .tar shard: every member through parse_tar_member (from memory), then through TarReader (the
// file: next(), and next_header() with data_of_last() as the shard loader reads), each regular
// member's WebDataset key and, for a label extension, its label.
#include "engine/data/tar.h"
#include "engine/data/webdataset.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

void webdataset_member(const ruche::TarMember& m, const std::uint8_t* bytes, std::size_t size) {
  std::string key, extension;
  if (!m.regular() || !ruche::webdataset_key(m.name, &key, &extension)) return;
  ruche::is_image_extension(extension);
  if (ruche::label_rank(extension) >= 0) {
    try {
      ruche::parse_label(extension, bytes, size, m.name);
    } catch (const ruche::Error&) {
    }
  }
}

}  // namespace

RUCHE_FUZZ_TARGET(tar) {
  try {
    std::uint64_t at = 0;
    while (at < size) {
      ruche::TarMember m;
      std::uint64_t consumed = 0;
      if (!ruche::parse_tar_member(data + at, size - at, "shard.tar", at, &m, &consumed)) break;
      webdataset_member(m, m.data.data(), m.data.size());
      if (consumed == 0) break;  // checked by the replay: a member takes at least a block
      at += consumed;
    }
  } catch (const ruche::Error&) {
  }
  const ruche::fuzz::TempFile file(data, size, ".tar");
  try {
    ruche::TarReader reader(file.path());
    ruche::TarMember m;
    for (int i = 0; i < 10000 && reader.next(&m); ++i) {
      webdataset_member(m, m.data.data(), m.data.size());
    }
  } catch (const ruche::Error&) {
  }
  ruche::TarReader reader(file.path());
  ruche::TarMember m;
  std::uint64_t member_size = 0;
  for (int i = 0; i < 10000 && reader.next_header(&m, &member_size); ++i) {
    if (m.regular()) {
      const std::vector<std::uint8_t> bytes = reader.data_of_last(member_size);
      webdataset_member(m, bytes.data(), bytes.size());
    }
  }
}
