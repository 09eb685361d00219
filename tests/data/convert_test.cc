// ruche convert imagefolder: shards in the WebDataset layout, the index and
// labels, the corrupt file named and skipped, a rerun that reuses complete
// shards, --resize-short.
#include "engine/data/convert.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "engine/data/jpeg.h"
#include "engine/data/shard_index.h"
#include "engine/data/tar.h"
#include "tests/data/data_files.h"
#include "tests/data/shard_fixture.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ConvertOptions options_for(const testing::TempDir& dir) {
  ConvertOptions o;
  o.source = dir / "src";
  o.out = dir / "shards";
  o.shard_mb = 0.004;  // a few images a shard
  o.workers = 2;
  o.log = nullptr;
  return o;
}

// Every sample of every shard: key -> (split, class), checking the member pairs
// and offsets.
std::map<std::string, std::pair<std::string, int>> read_all(const ShardIndex& index) {
  std::map<std::string, std::pair<std::string, int>> out;
  for (const ShardInfo& s : index.shards) {
    TarReader reader((fs::path(index.dir) / s.file).string());
    TarMember jpg, cls;
    std::size_t i = 0;
    while (reader.next(&jpg)) {
      EXPECT_TRUE(reader.next(&cls));
      const std::string key = jpg.name.substr(0, jpg.name.size() - 4);
      EXPECT_EQ(jpg.name, key + ".jpg");
      EXPECT_EQ(cls.name, key + ".cls");
      EXPECT_LT(i, s.offsets.size());
      if (i < s.offsets.size()) {
        EXPECT_EQ(jpg.offset, s.offsets[i]);
      }
      ++i;
      decode_jpeg_rgb(jpg.data.data(), jpg.data.size(), jpg.name,
                      8);  // readable
      EXPECT_TRUE(out.emplace(key, std::make_pair(s.split, std::stoi(std::string(cls.data.begin(),
                                                                                 cls.data.end()))))
                      .second)
          << key;
    }
    EXPECT_EQ(i, s.offsets.size()) << s.file;
    EXPECT_EQ(reader.offset(), s.end);
  }
  return out;
}

TEST(Convert, ImageFolderToShards) {
  testing::TempDir dir;
  const testing::TinyFolder folder = testing::make_tiny_folder(dir / "src", 4);
  const ConvertOptions o = options_for(dir);
  const ConvertSummary summary = convert_imagefolder(o);
  EXPECT_EQ(summary.images, folder.train_images + folder.val_images);
  EXPECT_EQ(summary.classes, 3);
  EXPECT_EQ(summary.shards_reused, 0);
  ASSERT_EQ(summary.skipped.size(), 1u);
  EXPECT_EQ(summary.skipped[0].path, folder.corrupt);
  EXPECT_NE(summary.skipped[0].reason.find("not a readable JPEG"), std::string::npos);
  EXPECT_NE(summary.text().find("skipped " + folder.corrupt + ": not a readable JPEG"),
            std::string::npos)
      << summary.text();

  EXPECT_EQ(slurp(dir / "shards/labels.txt"), "ant\nbee\ncow\n");
  const ShardIndex index = read_shard_index(dir / "shards");
  EXPECT_EQ(index.classes, folder.classes);
  ASSERT_EQ(static_cast<int>(index.shards.size()), summary.shards);
  EXPECT_GT(index.split("train").size(),
            2u);  // the budget cut train into several shards
  EXPECT_FALSE(index.split("val").empty());
  EXPECT_EQ(index.split("train")[0].file, "train-000000.tar");
  EXPECT_EQ(index.split("val")[0].file, "val-000000.tar");
  for (const auto& entry : fs::directory_iterator(dir / "shards")) {
    EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
  }

  const auto samples = read_all(index);
  EXPECT_EQ(static_cast<std::int64_t>(samples.size()), summary.images);
  // Keys: the path under the split folder, extension dropped, '/' and '.' as
  // '_'.
  const std::map<std::string, std::pair<std::string, int>> expected_some = {
      {"ant_img0", {"train", 0}}, {"ant_sub_deep", {"train", 0}}, {"bee_gray", {"train", 1}},
      {"cow_cmyk", {"train", 2}}, {"cow_img3", {"train", 2}},     {"bee_v1", {"val", 1}},
  };
  for (const auto& [key, value] : expected_some) {
    ASSERT_TRUE(samples.count(key)) << key;
    EXPECT_EQ(samples.at(key), value) << key;
  }
  EXPECT_FALSE(samples.count("ant_broken"));
}

TEST(Convert, RerunReusesCompleteShards) {
  testing::TempDir dir;
  const testing::TinyFolder folder = testing::make_tiny_folder(dir / "src", 4);
  ConvertOptions o = options_for(dir);
  const ConvertSummary first = convert_imagefolder(o);
  const std::string index_text = slurp(dir / "shards/index.tsv");
  const std::string shard1 = slurp(dir / "shards/train-000001.tar");

  // An interrupted run: one shard never renamed, another only half written.
  fs::remove(dir / "shards/train-000001.tar");
  std::ofstream(dir / "shards/train-000001.tar.tmp") << "half";
  fs::remove(dir / "shards/index.tsv");
  char log[4096] = {};
  o.log = fmemopen(log, sizeof log - 1, "w");
  const ConvertSummary second = convert_imagefolder(o);
  std::fclose(o.log);
  EXPECT_EQ(second.shards_reused, first.shards - 1);
  EXPECT_EQ(second.images, first.images);
  EXPECT_EQ(slurp(dir / "shards/index.tsv"), index_text);
  EXPECT_EQ(slurp(dir / "shards/train-000001.tar"),
            shard1);  // the same bytes again
  EXPECT_FALSE(fs::exists(dir / "shards/train-000001.tar.tmp"));
  // The corrupt file is still named, whichever run its shard was written in.
  ASSERT_EQ(second.skipped.size(), 1u);
  EXPECT_EQ(second.skipped[0].path, folder.corrupt);
  const std::string text = log;
  EXPECT_NE(text.find("train-000000.tar complete, reused"), std::string::npos) << text;
  EXPECT_NE(text.find("train-000001.tar written"), std::string::npos) << text;
  const std::string reused = std::to_string(first.shards - 1) + " complete before, reused";
  EXPECT_NE(text.find(reused), std::string::npos) << text;

  // Other options into the same directory are refused, not mixed.
  o.shard_mb = 1;
  o.log = nullptr;
  EXPECT_NE(error_of([&] { convert_imagefolder(o); }).find("converted with other options"),
            std::string::npos);
}

TEST(Convert, ResizeShortSide) {
  testing::TempDir dir;
  testing::write_jpeg(dir / "src/a/wide.jpg", testing::pattern_image(40, 20, 3, 1));
  testing::write_jpeg(dir / "src/a/small.jpg", testing::pattern_image(8, 6, 3, 2));
  testing::write_jpeg(dir / "src/b/tall.jpg", testing::pattern_image(30, 45, 1, 3));
  ConvertOptions o = options_for(dir);
  o.resize_short = 10;
  const ConvertSummary s = convert_imagefolder(o);
  EXPECT_EQ(s.images, 3);
  EXPECT_TRUE(s.skipped.empty());
  const ShardIndex index = read_shard_index(dir / "shards");
  std::map<std::string, std::pair<int, int>> sizes;
  for (const ShardInfo& shard : index.shards) {
    TarReader reader((fs::path(index.dir) / shard.file).string());
    for (TarMember m; reader.next(&m);) {
      if (m.name.ends_with(".jpg")) {
        const JpegInfo info = jpeg_info(m.data.data(), m.data.size(), m.name);
        sizes[m.name] = {info.width, info.height};
      }
    }
  }
  EXPECT_EQ(sizes["a_wide.jpg"], std::make_pair(20, 10));
  EXPECT_EQ(sizes["a_small.jpg"], std::make_pair(8, 6));  // not enlarged
  EXPECT_EQ(sizes["b_tall.jpg"], std::make_pair(10, 15));
}

TEST(Convert, FlatFolderAndErrors) {
  testing::TempDir dir;
  testing::write_jpeg(dir / "src/x/1.jpg", testing::pattern_image(8, 8, 3, 1));
  testing::write_jpeg(dir / "src/y/2.jpg", testing::pattern_image(8, 8, 3, 2));
  ConvertOptions o = options_for(dir);
  o.shard_mb = 1;
  const ConvertSummary s = convert_imagefolder(o);
  EXPECT_EQ(s.images, 2);
  const ShardIndex index = read_shard_index(dir / "shards");
  EXPECT_EQ(index.split("val").size(), 0u);
  EXPECT_EQ(index.split("train").size(),
            1u);  // "SRC/<class>/*" is one split, train

  testing::write_jpeg(dir / "two/train/x/a.b.jpg", testing::pattern_image(8, 8, 3, 1));
  testing::write_jpeg(dir / "two/val/z/c.jpg", testing::pattern_image(8, 8, 3, 1));
  o.source = dir / "two";
  o.out = dir / "out2";
  EXPECT_NE(error_of([&] { convert_imagefolder(o); }).find("class folder of val not among"),
            std::string::npos);
  fs::remove_all(dir / "two/val");
  testing::write_jpeg(dir / "two/train/x/a_b.jpg", testing::pattern_image(8, 8, 3, 1));
  EXPECT_NE(error_of([&] { convert_imagefolder(o); }).find("have the same shard key 'x_a_b'"),
            std::string::npos);
  o.source = dir / "nowhere";
  EXPECT_NE(error_of([&] { convert_imagefolder(o); }).find("nowhere: not a directory"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
