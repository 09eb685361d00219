// Shards ruche did not write: Python's tarfile in ustar, GNU and PAX formats (keys over 100
// bytes under class folders, mixed extensions and label kinds, a sample without its label, a
// member that belongs to no sample, a directory entry) indexed by index_shards and read by
// ShardLoader: every sample once per epoch on 1 and 2 ranks, labels as written, pixels equal to
// ruche's decode of the same JPEG (and PNG pixels as written); a truncated shard named with its
// byte offset; resumable indexing; brace patterns and --val-data selection.
#include "engine/data/webdataset.h"

#include <gtest/gtest.h>
#include <png.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/data/image_pipeline.h"
#include "engine/data/index_shards.h"
#include "engine/data/shard_loader.h"
#include "engine/data/tar.h"
#include "tests/data/data_files.h"
#include "tests/data/shard_fixture.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

constexpr int kCrop = 8;

std::vector<std::uint8_t> encode_png(const Image8& im) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(im.width);
  image.height = static_cast<png_uint_32>(im.height);
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  EXPECT_TRUE(png_image_write_to_memory(&image, nullptr, &size, 0, im.pixels.data(), 0, nullptr));
  std::vector<std::uint8_t> out(size);
  EXPECT_TRUE(
      png_image_write_to_memory(&image, out.data(), &size, 0, im.pixels.data(), 0, nullptr));
  out.resize(size);
  return out;
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}
void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A member's name under a folder of the archive.
std::string member(const std::string& folder, const std::string& name) {
  return folder + "/" + name;
}

// Writes DIR/<file> with Python's tarfile in `format` (USTAR_FORMAT, GNU_FORMAT, PAX_FORMAT) from
// a plan: one "name<TAB>source" line a member; source "-dir" makes a directory entry.
void python_tar(const std::string& python, const testing::TempDir& tmp, const std::string& out,
                const std::string& format,
                const std::vector<std::pair<std::string, std::string>>& plan) {
  const std::string plan_path = tmp / (fs::path(out).filename().string() + ".plan");
  {
    std::ofstream p(plan_path);
    for (const auto& [name, source] : plan) p << name << '\t' << source << '\n';
  }
  const std::string script = tmp / "write_tar.py";
  write_file(script,
             "import sys, tarfile\n"
             "out, fmt, plan = sys.argv[1], getattr(tarfile, sys.argv[2]), sys.argv[3]\n"
             "with tarfile.open(out, 'w', format=fmt) as t:\n"
             "    for line in open(plan):\n"
             "        name, src = line.rstrip('\\n').split('\\t')\n"
             "        if src == '-dir':\n"
             "            info = tarfile.TarInfo(name); info.type = tarfile.DIRTYPE\n"
             "            t.addfile(info)\n"
             "        else:\n"
             "            t.add(src, arcname=name)\n");
  const std::string command = python + " " + script + " " + out + " " + format + " " + plan_path;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

// What a shard's complete samples should read back as, in index order.
struct Expected {
  int label = 0;
  std::string image;  // its source file
  bool png = false;
  Image8 pixels;  // PNG: the pixels written
};

class WebDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* python = std::getenv("RUCHE_PYTHON");
    if (!python || !*python) GTEST_SKIP() << "RUCHE_PYTHON is not set (ctest sets it)";
    shards_ = dir_ / "shards";
    fs::create_directories(shards_);
    fs::create_directories(dir_ / "src");
    write_file(shards_ + "/classes.txt", "ant\nbee\ncow\n");
    const std::string formats[] = {"USTAR_FORMAT", "GNU_FORMAT", "PAX_FORMAT"};
    int level = 0;
    for (int s = 0; s < 3; ++s) {
      std::vector<std::pair<std::string, std::string>> plan;
      const auto src = [&](const std::string& name) { return dir_ / ("src/" + name); };
      const auto text = [&](const std::string& name, const std::string& value) {
        write_file(src(name), value);
        return src(name);
      };
      for (int i = 0; i < 6; ++i) {
        const int label = (s + i) % 3;
        // Keys over 100 bytes under a class folder; ustar fits them with its prefix field (a
        // short last component), GNU and PAX with long names.
        const std::string folder = "n0144076" + std::to_string(label) + "_" + std::string(60, 'd');
        const std::string stem = s == 0 ? "img" + std::to_string(i) + "_" + std::string(40, 'k')
                                        : "img" + std::to_string(i) + "_" + std::string(110, 'k');
        const std::string key = member(folder, stem);
        const std::string tag = std::to_string(s) + "_" + std::to_string(i);
        Expected e;
        e.label = label;
        std::string image_ext;
        if (i == 2) {  // a PNG
          e.png = true;
          e.pixels = testing::pattern_image(kCrop, kCrop, 3, level++);
          e.image = src("im" + tag + ".png");
          write_file(e.image, encode_png(e.pixels));
          image_ext = ".png";
        } else {
          e.image = src("im" + tag + ".jpg");
          testing::write_jpeg(e.image, testing::pattern_image(12 + i, 10 + s, 3, level++));
          image_ext = i == 1 ? ".jpeg" : i == 3 ? ".JPG" : ".jpg";
        }
        // Label kinds: .cls, .json number, .json name, .txt number, .txt name.
        std::string label_name, label_src;
        switch (i) {
          case 1:
            label_name = ".json",
            label_src = text("l" + tag, "{\"label\": " + std::to_string(label) + ", \"w\": 3}");
            break;
          case 2:
            label_name = ".txt", label_src = text("l" + tag, std::to_string(label) + "\n");
            break;
          case 3:
            label_name = ".json",
            label_src = text("l" + tag, "{\"label\": \"" + classes_[label] + "\"}");
            break;
          case 4:
            label_name = ".txt", label_src = text("l" + tag, classes_[label]);
            break;
          default:
            label_name = ".cls", label_src = text("l" + tag, std::to_string(label));
            break;
        }
        if (i == 5) {  // metadata without a label, after the image, before the label
          plan.emplace_back(key + image_ext, e.image);
          plan.emplace_back(key + ".json", text("m" + tag, "{\"source\": \"camera\"}"));
          plan.emplace_back(key + label_name, label_src);
        } else {
          plan.emplace_back(key + label_name, label_src);  // label first: order does not matter
          plan.emplace_back(key + image_ext, e.image);
        }
        expected_.push_back(e);
        if (i == 2) {
          // A sample missing its label, and a member of no sample (with a directory entry).
          plan.emplace_back(member(folder, "nolabel" + tag + ".jpg"),
                            e.png ? expected_[expected_.size() - 2].image : e.image);
          plan.emplace_back("README" + tag + ".md", text("r" + tag, "made by hand"));
          plan.emplace_back(member(folder, "sub" + tag), "-dir");
        }
      }
      python_tar(std::getenv("RUCHE_PYTHON"), dir_,
                 shards_ + "/train-00000" + std::to_string(s) + ".tar", formats[s], plan);
    }
  }

  ShardLoaderOptions options(bool train) const {
    ShardLoaderOptions o;
    o.batch_size = 4;
    o.train = train;
    o.pad = train;
    o.threads = 2;
    o.transform.crop = kCrop;
    o.transform.resize = kCrop;
    o.transform.dct_scaling = false;
    return o;
  }

  // Every (sample, x row, label) one rank's epoch returns.
  struct Row {
    std::int64_t sample;
    std::int32_t label;
    std::vector<std::uint8_t> x;
  };
  std::vector<Row> epoch(const ShardIndex& index, int rank, int world, bool train) {
    ShardLoaderOptions o = options(train);
    o.x_dtype = DType::u8;
    ShardLoader loader(index, "train", rank, world, o);
    loader.start_epoch(0);
    Tensor x = Tensor::empty(loader.batch_shape(), DType::u8);
    Tensor y = Tensor::zeros({o.batch_size}, DType::i32);
    std::vector<Row> rows;
    std::vector<std::int64_t> samples;
    const std::int64_t per = x.numel() / o.batch_size;
    for (std::int64_t n; (n = loader.next(x, y, &samples)) > 0;) {
      for (std::int64_t j = 0; j < n; ++j) {
        const std::uint8_t* p = x.data<std::uint8_t>() + j * per;
        rows.push_back({samples[j], y.data<std::int32_t>()[j], {p, p + per}});
      }
    }
    return rows;
  }

  testing::TempDir dir_;
  std::string shards_;
  std::vector<std::string> classes_{"ant", "bee", "cow"};
  std::vector<Expected> expected_;
};

TEST_F(WebDatasetTest, IndexedAndReadFromUstarGnuAndPax) {
  // The archives hold what their formats add: a ustar prefix, GNU long names, PAX headers.
  const auto holds = [&](int s, const std::string& what) {
    std::ifstream in(shards_ + "/train-00000" + std::to_string(s) + ".tar", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    return bytes.find(what) != std::string::npos;
  };
  EXPECT_FALSE(holds(0, "@LongLink") || holds(0, "PaxHeader"));
  EXPECT_TRUE(holds(1, "././@LongLink"));
  EXPECT_TRUE(holds(2, "PaxHeader") && holds(2, " path=n0144076"));
  IndexOptions io;
  io.dir = shards_;
  io.workers = 2;
  io.log = nullptr;
  IndexSummary summary;
  const ShardIndex index = index_shards(io, &summary);
  EXPECT_EQ(summary.shards, 3);
  EXPECT_EQ(summary.reused, 0);
  EXPECT_EQ(summary.samples, 18);
  EXPECT_EQ(summary.skipped_members, 6);  // a README and a directory a shard
  ASSERT_EQ(summary.incomplete.size(), 3u);
  EXPECT_NE(summary.incomplete[0].find("train-000000.tar: sample '"), std::string::npos);
  EXPECT_NE(summary.incomplete[0].find("/nolabel0_2' at byte "), std::string::npos);
  EXPECT_NE(summary.incomplete[0].find("has no label"), std::string::npos);
  EXPECT_EQ(index.classes, classes_);
  EXPECT_TRUE(fs::exists(shards_ + "/index.tsv"));
  EXPECT_EQ(read_shard_index(shards_).shards.size(), 3u);

  // Every sample once, labels as written, pixels as ruche decodes the same bytes.
  std::vector<Row> rows = epoch(index, 0, 1, false);
  ASSERT_EQ(rows.size(), 18u);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    ASSERT_EQ(rows[k].sample, static_cast<std::int64_t>(k));
    const Expected& e = expected_[k];
    EXPECT_EQ(rows[k].label, e.label) << k;
    std::vector<std::uint8_t> want(3 * kCrop * kCrop);
    if (e.png) {
      for (int c = 0; c < 3; ++c)
        for (int p = 0; p < kCrop * kCrop; ++p)
          want[c * kCrop * kCrop + p] = e.pixels.pixels[p * 3 + c];
    } else {
      std::ifstream in(e.image, std::ios::binary);
      const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
      jpeg_to_sample(bytes.data(), bytes.size(), e.image, false, options(false).transform,
                     RngStream{1, RngPurpose::augment, 0, static_cast<std::uint32_t>(k), 0},
                     want.data());
    }
    EXPECT_EQ(rows[k].x, want) << "sample " << k << (e.png ? " (png)" : " (jpeg)");
  }

  // Training order on 1 and 2 ranks: every sample once an epoch (padding repeats are -1).
  for (int world : {1, 2}) {
    std::multiset<std::int64_t> seen;
    for (int r = 0; r < world; ++r) {
      for (const Row& row : epoch(index, r, world, true)) {
        if (row.sample >= 0) {
          seen.insert(row.sample);
          EXPECT_EQ(row.label, expected_[row.sample].label);
        }
      }
    }
    std::multiset<std::int64_t> all;
    for (std::int64_t k = 0; k < 18; ++k) all.insert(k);
    EXPECT_EQ(seen, all) << world << " ranks";
  }

  // A rerun reads nothing again; a changed shard is read again.
  index_shards(io, &summary);
  EXPECT_EQ(summary.reused, 3);
  fs::last_write_time(shards_ + "/train-000001.tar",
                      fs::last_write_time(shards_ + "/train-000001.tar") + std::chrono::seconds(5));
  index_shards(io, &summary);
  EXPECT_EQ(summary.reused, 2);
  EXPECT_EQ(summary.samples, 18);
}

TEST_F(WebDatasetTest, TruncatedShardNamedWithItsOffset) {
  const std::string path = shards_ + "/train-000002.tar";
  fs::resize_file(path, fs::file_size(path) / 2 + 100);
  IndexOptions io;
  io.dir = shards_;
  io.log = nullptr;
  const std::string e = error_of([&] { index_shards(io); });
  EXPECT_NE(e.find(path + ": truncated at byte"), std::string::npos) << e;
  EXPECT_NE(e.find("at byte"), std::string::npos) << e;
}

TEST_F(WebDatasetTest, PatternsSelectTrainingAndValidationShards) {
  fs::rename(shards_ + "/train-000002.tar", shards_ + "/val-000000.tar");
  ShardSetOptions so;
  so.log = nullptr;
  // No index yet: built on first use; the val-* shard validates.
  ShardIndex set = open_shard_set(shards_ + "/train-{000000..000001}.tar", "", so);
  EXPECT_TRUE(fs::exists(shards_ + "/index.tsv"));
  ASSERT_EQ(set.split("train").size(), 2u);
  ASSERT_EQ(set.split("val").size(), 1u);
  EXPECT_EQ(set.split("val")[0].file, "val-000000.tar");
  // --val-data names them explicitly; a directory is its train split and its val split.
  set = open_shard_set(shards_ + "/train-{000000..000000}.tar", shards_ + "/val-*.tar", so);
  EXPECT_EQ(set.split("train").size(), 1u);
  EXPECT_EQ(set.split("val").size(), 1u);
  set = open_shard_set(shards_, "", so);
  EXPECT_EQ(set.split("train").size(), 2u);
  EXPECT_EQ(set.split("val").size(), 1u);
  EXPECT_NE(error_of([&] {
              open_shard_set(shards_ + "/train-{000000..000009}.tar", "", so);
            }).find("train-000002.tar: no such shard (from the pattern"),
            std::string::npos);
  ShardLoader val(set, "val", 0, 1, options(false));
  EXPECT_EQ(val.split_size(), 6);
}

TEST(WebDatasetRules, KeysBracesAndLabels) {
  std::string key, ext;
  ASSERT_TRUE(webdataset_key("a.b/n01_1.seg.JPEG", &key, &ext));
  EXPECT_EQ(key, "a.b/n01_1");
  EXPECT_EQ(ext, "seg.jpeg");
  EXPECT_FALSE(webdataset_key("dir/README", &key, &ext));
  EXPECT_FALSE(webdataset_key("__meta__.json", &key, &ext));
  EXPECT_FALSE(webdataset_key("dir/.hidden", &key, &ext));
  EXPECT_EQ(
      expand_braces("t-{000008..000011}.tar"),
      (std::vector<std::string>{"t-000008.tar", "t-000009.tar", "t-000010.tar", "t-000011.tar"}));
  EXPECT_EQ(expand_braces("{a,b}-{1..2}"), (std::vector<std::string>{"a-1", "a-2", "b-1", "b-2"}));
  EXPECT_EQ(expand_braces("x{y}"), (std::vector<std::string>{"x{y}"}));
  const std::string json = "{\"label\": 7, \"caption\": \"a dog\"}";
  const SampleLabel l =
      parse_label("json", reinterpret_cast<const std::uint8_t*>(json.data()), json.size(), "m");
  EXPECT_TRUE(l.found);
  EXPECT_EQ(l.index, 7);
  EXPECT_FALSE(parse_label("json", reinterpret_cast<const std::uint8_t*>("{}"), 2, "m").found);
  EXPECT_NE(error_of([] {
              parse_label("cls", reinterpret_cast<const std::uint8_t*>("-3"), 2, "m");
            }).find("m: label -3 is negative"),
            std::string::npos);
  EXPECT_EQ(shard_split_of("val-000000.tar"), "val");
  EXPECT_EQ(shard_split_of("imagenet-train-000000.tar"), "train");
}

}  // namespace
}  // namespace ruche
