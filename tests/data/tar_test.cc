// The ustar writer and reader: a round trip (read back by us and by Python's
// tarfile), and truncated or corrupt archives as errors naming the file and the
// byte offset.
#include "engine/data/tar.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/data/data_files.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;

std::vector<std::uint8_t> bytes_of(std::size_t n, int seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 31 + seed) % 251);
  return v;
}

// Three members: empty, exactly one block, and one that needs padding.
std::string write_sample_archive(const testing::TempDir& dir, std::vector<std::uint64_t>* offsets) {
  std::string path = dir / "a.tar";
  TarWriter tar(path);
  offsets->push_back(tar.add("empty.cls", nullptr, 0));
  const std::vector<std::uint8_t> block = bytes_of(512, 1), odd = bytes_of(1000, 2);
  offsets->push_back(tar.add("block.jpg", block.data(), block.size()));
  offsets->push_back(tar.add("n01440764_10026.jpg", odd.data(), odd.size()));
  tar.finish();
  return path;
}

TEST(Tar, RoundTrip) {
  testing::TempDir dir;
  std::vector<std::uint64_t> offsets;
  const std::string path = write_sample_archive(dir, &offsets);
  EXPECT_EQ(offsets, (std::vector<std::uint64_t>{0, 512, 1536}));
  EXPECT_EQ(std::filesystem::file_size(path), 1536u + 512 + 1024 + 1024);
  TarReader reader(path);
  TarMember m;
  ASSERT_TRUE(reader.next(&m));
  EXPECT_EQ(m.name, "empty.cls");
  EXPECT_TRUE(m.data.empty());
  ASSERT_TRUE(reader.next(&m));
  EXPECT_EQ(m.name, "block.jpg");
  EXPECT_EQ(m.offset, 512u);
  EXPECT_EQ(m.data, bytes_of(512, 1));
  ASSERT_TRUE(reader.next(&m));
  EXPECT_EQ(m.name, "n01440764_10026.jpg");
  EXPECT_EQ(m.data, bytes_of(1000, 2));
  EXPECT_FALSE(reader.next(&m));
  // Headers only, and a seek to a member from its offset.
  reader.seek(offsets[2]);
  std::uint64_t size = 0;
  ASSERT_TRUE(reader.next_header(&m, &size));
  EXPECT_EQ(size, 1000u);
  EXPECT_FALSE(reader.next_header(&m, &size));
  EXPECT_EQ(reader.offset(), 1536u + 512 + 1024);  // where the end blocks start
}

TEST(Tar, PythonTarfileReadsIt) {
  const char* python = std::getenv("RUCHE_PYTHON");
  if (!python || !*python) GTEST_SKIP() << "RUCHE_PYTHON is not set (ctest sets it)";
  testing::TempDir dir;
  std::vector<std::uint64_t> offsets;
  const std::string path = write_sample_archive(dir, &offsets);
  const std::string out = dir / "listing.txt";
  const std::string script =
      "import sys, tarfile\n"
      "with tarfile.open(sys.argv[1], 'r:') as t, "
      "open(sys.argv[2], 'w') as o:\n"
      "    for m in t:\n"
      "        d = t.extractfile(m).read()\n"
      "        o.write(f'{m.name} {m.size} {m.offset} "
      "{m.isreg()} {sum(d) % 65521}\\n')\n";
  std::ofstream(dir / "list.py") << script;
  const std::string command =
      std::string(python) + " " + (dir / "list.py") + " " + path + " " + out;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(out);
  const std::string listing((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto checksum = [](const std::vector<std::uint8_t>& v) {
    std::uint64_t s = 0;
    for (std::uint8_t b : v) s += b;
    return std::to_string(s % 65521);
  };
  EXPECT_EQ(listing, "empty.cls 0 0 True 0\nblock.jpg 512 512 True " + checksum(bytes_of(512, 1)) +
                         "\nn01440764_10026.jpg 1000 1536 True " + checksum(bytes_of(1000, 2)) +
                         "\n");
}

TEST(Tar, TruncatedArchiveNamesFileAndOffset) {
  testing::TempDir dir;
  std::vector<std::uint64_t> offsets;
  const std::string path = write_sample_archive(dir, &offsets);
  const auto read_all = [](const std::string& p) {
    TarReader reader(p);
    TarMember m;
    while (reader.next(&m)) {
    }
  };
  ASSERT_EQ(error_of([&] { read_all(path); }), "");
  // Cut in the middle of the third member's data, of its header, and after it
  // (no end blocks).
  const std::vector<std::pair<std::uint64_t, std::string>> cuts = {
      {1536 + 512 + 300, "truncated at byte 2348 (member 'n01440764_10026.jpg' at byte 1536"},
      {1536 + 100, "truncated at byte 1636 (a tar header at byte 1536 needs 512 bytes)"},
      {1536 + 512 + 1024, "truncated at byte 3072 (no end-of-archive blocks)"},
  };
  for (const auto& [size, message] : cuts) {
    std::filesystem::copy_file(path, dir / "cut.tar",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(dir / "cut.tar", size);
    const std::string e = error_of([&] { read_all(dir / "cut.tar"); });
    EXPECT_NE(e.find(dir / "cut.tar"), std::string::npos) << e;
    EXPECT_NE(e.find(message), std::string::npos) << e;
  }
  // The same checks on bytes in memory (the shard reader's pread path).
  std::ifstream in(path, std::ios::binary);
  const std::vector<std::uint8_t> all((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
  TarMember m;
  std::uint64_t consumed = 0;
  EXPECT_NE(
      error_of([&] { parse_tar_member(all.data() + 1536, 800, "s.tar", 1536, &m, &consumed); })
          .find("s.tar: truncated at byte 2336 (member "
                "'n01440764_10026.jpg' at byte 1536 "
                "needs 1536 bytes)"),
      std::string::npos);
  ASSERT_TRUE(parse_tar_member(all.data() + 1536, 1536, "s.tar", 1536, &m, &consumed));
  EXPECT_EQ(consumed, 1536u);
  EXPECT_EQ(m.data, bytes_of(1000, 2));
}

TEST(Tar, CorruptHeaderAndBadNames) {
  testing::TempDir dir;
  std::vector<std::uint64_t> offsets;
  const std::string path = write_sample_archive(dir, &offsets);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(512 + 3);  // a byte of the second member's name
    f.put('X');
  }
  TarReader reader(path);
  TarMember m;
  ASSERT_TRUE(reader.next(&m));
  const std::string e = error_of([&] { reader.next(&m); });
  EXPECT_NE(e.find(path + ": corrupt tar header at byte 512 (checksum"), std::string::npos) << e;
  TarWriter w(dir / "b.tar");
  EXPECT_NE(error_of([&] { w.add(std::string(101, 'a'), "x", 1); }).find("has 101 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([&] { TarReader r(dir / "missing.tar"); }).find("missing.tar: cannot open"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
