// ShardLoader over shards `ruche convert` wrote: every sample exactly once per
// epoch on 1, 2 and 3 ranks with equal step counts, labels from the .cls
// members, a sample the same on any rank, exact resume at the same world size,
// every remaining sample once on another world size, and a different order each
// epoch.
#include "engine/data/shard_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <set>

#include "engine/data/convert.h"
#include "engine/data/tar.h"
#include "tests/data/data_files.h"
#include "tests/data/shard_fixture.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

constexpr int kCrop = 8;

// One batch as a rank saw it.
struct Batch {
  std::int64_t count = 0;
  std::vector<std::int64_t> samples;
  std::vector<std::int32_t> labels;
  std::vector<float> x;
  bool operator==(const Batch&) const = default;
};

class ShardLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = testing::make_tiny_folder(dir_ / "src", 7);
    ConvertOptions o;
    o.source = dir_ / "src";
    o.out = dir_ / "shards";
    o.shard_mb = 0.004;
    o.workers = 2;
    o.log = nullptr;
    convert_imagefolder(o);
    index_ = read_shard_index(dir_ / "shards");
    // The class of every global sample number, from the shards themselves.
    for (const ShardInfo& s : index_.split("train")) {
      TarReader reader((fs::path(index_.dir) / s.file).string());
      for (TarMember m; reader.next(&m);) {
        if (m.name.ends_with(".cls")) {
          classes_.push_back(std::stoi(std::string(m.data.begin(), m.data.end())));
        } else {
          keys_.push_back(m.name.substr(0, m.name.find('.')));
        }
      }
    }
  }

  ShardLoaderOptions options(bool train = true) const {
    ShardLoaderOptions o;
    o.batch_size = 2;
    o.train = train;
    o.pad = train;
    o.seed = 5;
    o.shuffle_buffer = 4;
    o.transform.crop = kCrop;
    o.transform.resize = kCrop;
    o.transform.dct_scaling = false;
    o.threads = 2;
    return o;
  }

  std::vector<std::unique_ptr<ShardLoader>> loaders(int world, bool train = true) const {
    std::vector<std::unique_ptr<ShardLoader>> out;
    out.reserve(world);
    for (int r = 0; r < world; ++r) {
      out.push_back(std::make_unique<ShardLoader>(index_, "train", r, world, options(train)));
    }
    return out;
  }

  // Up to `steps` batches (all: -1) from one loader.
  static std::vector<Batch> take(ShardLoader& loader, std::int64_t steps = -1) {
    Tensor x = Tensor::empty(loader.batch_shape());
    Tensor y = Tensor::zeros({loader.batch_shape()[0]}, DType::i32);
    std::vector<Batch> out;
    for (std::int64_t s = 0; steps < 0 || s < steps; ++s) {
      Batch b;
      b.count = loader.next(x, y, &b.samples);
      if (b.count == 0) break;
      b.labels.assign(y.data<std::int32_t>(), y.data<std::int32_t>() + b.count);
      b.x.assign(x.data<float>(), x.data<float>() + b.count * 3 * kCrop * kCrop);
      out.push_back(std::move(b));
    }
    return out;
  }

  // The real (not repeated) samples of some batches, appended to `seen`.
  static void collect(const std::vector<Batch>& batches, std::vector<std::int64_t>* seen) {
    for (const Batch& b : batches) {
      for (std::int64_t s : b.samples) {
        if (s >= 0) seen->push_back(s);
      }
    }
  }

  std::vector<std::int64_t> all() const {
    std::vector<std::int64_t> v(classes_.size());
    std::iota(v.begin(), v.end(), 0);
    return v;
  }

  testing::TempDir dir_;
  testing::TinyFolder folder_;
  ShardIndex index_;
  std::vector<int> classes_;
  std::vector<std::string> keys_;  // per global sample number
};

TEST_F(ShardLoaderTest, EverySampleOncePerEpochOnAnyWorldSize) {
  ASSERT_EQ(static_cast<int>(classes_.size()), folder_.train_images);  // 21
  ASSERT_GT(index_.split("train").size(), 3u);
  std::map<std::int64_t, std::vector<float>> pixels;  // sample -> x row, from every world size
  for (int world : {1, 2, 3}) {
    auto ranks = loaders(world);
    std::vector<std::int64_t> seen;
    for (int r = 0; r < world; ++r) {
      ranks[r]->start_epoch(0);
      const std::vector<Batch> batches = take(*ranks[r]);
      EXPECT_EQ(static_cast<std::int64_t>(batches.size()), ranks[0]->steps_per_epoch())
          << "world " << world << " rank " << r;
      EXPECT_EQ(ranks[r]->steps_this_epoch(), ranks[0]->steps_per_epoch());
      collect(batches, &seen);
      for (const Batch& b : batches) {
        EXPECT_EQ(b.count, 2);  // padded: full batches only
        for (std::int64_t j = 0; j < b.count; ++j) {
          const std::int64_t s = b.samples[j];
          if (s < 0) continue;
          EXPECT_EQ(b.labels[j], classes_[s]) << "sample " << s;
          const std::vector<float> row(b.x.begin() + j * 3 * kCrop * kCrop,
                                       b.x.begin() + (j + 1) * 3 * kCrop * kCrop);
          const auto [it, fresh] = pixels.emplace(s, row);
          if (!fresh) {
            EXPECT_EQ(it->second, row) << "sample " << s << " world " << world;
          }
        }
      }
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, all()) << "world " << world;
  }
  // 21 samples: 1 rank x 11 steps of 2 (one repeat), 2 x 6 (11 + 10: 3
  // repeats), 3 x 4.
  EXPECT_EQ(loaders(1)[0]->steps_per_epoch(), 11);
  EXPECT_EQ(loaders(2)[1]->steps_per_epoch(), 6);
  EXPECT_EQ(loaders(3)[2]->steps_per_epoch(), 4);
}

TEST_F(ShardLoaderTest, ResumeAtTheSameWorldSizeContinuesAtTheSameSample) {
  auto whole = loaders(2);
  std::vector<std::vector<Batch>> expected;
  for (auto& l : whole) {
    l->start_epoch(3);
    expected.push_back(take(*l));
  }
  auto first = loaders(2);
  std::vector<ShardPosition> saved;
  for (auto& l : first) {
    l->start_epoch(3);
    take(*l, 2);
    saved.push_back(l->position());
  }
  EXPECT_EQ(saved[0], saved[1]);  // what one rank saves serves all
  EXPECT_EQ(saved[0].encode(), "shards 1 epoch 3 samples 21 legs 1 2 4 4");
  const ShardPosition p = ShardPosition::decode(saved[0].encode());
  EXPECT_EQ(p, saved[0]);
  auto resumed = loaders(2);
  for (int r = 0; r < 2; ++r) {
    resumed[r]->start_epoch(p);
    const std::vector<Batch> rest = take(*resumed[r]);
    ASSERT_EQ(rest.size() + 2, expected[r].size());
    for (std::size_t k = 0; k < rest.size(); ++k) EXPECT_EQ(rest[k], expected[r][k + 2]) << k;
  }
}

TEST_F(ShardLoaderTest, ResumeOnOtherWorldSizesSeesEveryRemainingSampleOnce) {
  // 2 ranks for 2 steps, then 3 ranks for 1 step, then 1 rank to the end of the
  // epoch.
  std::vector<std::int64_t> seen;
  ShardPosition at;
  at.epoch = 1;
  at.samples = 21;
  const std::vector<std::pair<int, std::int64_t>> legs = {{2, 2}, {3, 1}, {1, -1}};
  for (const auto& [world, steps] : legs) {
    auto ranks = loaders(world);
    std::vector<std::int64_t> leg_seen;
    std::set<std::int64_t> step_counts;
    for (auto& l : ranks) {
      l->start_epoch(at);
      step_counts.insert(l->steps_this_epoch());
      collect(take(*l, steps), &leg_seen);
    }
    EXPECT_EQ(step_counts.size(), 1u) << "world " << world;
    // What the position says is left is what was not read.
    std::vector<std::int64_t> left = ranks[0]->remaining(ranks[0]->position());
    std::vector<std::int64_t> read = seen;
    read.insert(read.end(), leg_seen.begin(), leg_seen.end());
    std::sort(left.begin(), left.end());
    const std::set<std::int64_t> done(read.begin(), read.end());
    EXPECT_EQ(done.size(), read.size()) << "a sample read twice by world " << world;
    std::vector<std::int64_t> expected_left;
    for (std::int64_t s : all()) {
      if (!done.count(s)) expected_left.push_back(s);
    }
    if (steps > 0) {
      EXPECT_EQ(left, expected_left) << "world " << world;
    }
    seen = read;
    at = ranks[0]->position();
  }
  EXPECT_EQ(at.legs.size(), 3u);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, all());  // each exactly once over the three legs
}

TEST_F(ShardLoaderTest, EachEpochHasItsOwnOrder) {
  auto a = loaders(1);
  const auto order = [&](std::uint32_t epoch) {
    a[0]->start_epoch(epoch);
    std::vector<std::int64_t> s;
    collect(take(*a[0]), &s);
    return s;
  };
  const std::vector<std::int64_t> e0 = order(0), e1 = order(1);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(order(0), e0);  // and the same order again for the same epoch
  std::vector<std::int64_t> sorted = e1;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, all());
}

TEST_F(ShardLoaderTest, EvaluationReadsInOrderWithoutRepeats) {
  // Each source file by its shard key (the path under train/, no extension, '/' as '_').
  std::map<std::string, std::string> file_of_key;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "src/train")) {
    if (!e.is_regular_file()) continue;
    std::string key = fs::relative(e.path(), dir_ / "src/train").replace_extension().string();
    std::replace(key.begin(), key.end(), '/', '_');
    file_of_key[key] = e.path().string();
  }
  auto ranks = loaders(3, false);
  std::vector<std::int64_t> seen;
  std::vector<float> expected(3 * kCrop * kCrop);
  for (auto& l : ranks) {
    l->start_epoch(0);
    const std::vector<Batch> batches = take(*l);
    EXPECT_EQ(batches.back().count, 1);  // 7 samples a rank: a short last batch, no repeats
    collect(batches, &seen);
    // The pixels are the validation transform of the very file the sample came from.
    for (const Batch& b : batches) {
      for (std::int64_t j = 0; j < b.count; ++j) {
        const std::string& path = file_of_key.at(keys_.at(b.samples[j]));
        std::ifstream in(path, std::ios::binary);
        const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                              std::istreambuf_iterator<char>());
        jpeg_to_sample(bytes.data(), bytes.size(), path, false, options(false).transform, {},
                       expected.data());
        EXPECT_TRUE(
            std::equal(expected.begin(), expected.end(), b.x.begin() + j * 3 * kCrop * kCrop))
            << path;
      }
    }
  }
  EXPECT_EQ(seen, all());  // contiguous parts, in the index's order
}

TEST_F(ShardLoaderTest, PixelOutputIsTheSampleBeforeNormalising) {
  // Training (random crops and flips) and evaluation: u8 rows normalised as normalize_to_chw does
  // are the f32 rows, bit for bit, with the same samples and labels.
  for (const bool train : {true, false}) {
    ShardLoaderOptions o = options(train);
    ShardLoader floats(index_, "train", 0, 1, o);
    o.x_dtype = DType::u8;
    ShardLoader pixels(index_, "train", 0, 1, o);
    floats.start_epoch(1);
    pixels.start_epoch(1);
    const std::vector<Batch> expected = take(floats);
    Tensor x = Tensor::empty(pixels.batch_shape(), DType::u8);
    Tensor y = Tensor::zeros({pixels.batch_shape()[0]}, DType::i32);
    const float* mean = o.transform.mean;
    const float* std = o.transform.std;
    const std::int64_t plane = kCrop * kCrop;
    std::size_t at = 0;
    bool some_pixel_inside = false;  // neither 0 nor 255: not a clamped or empty image
    for (;; ++at) {
      Batch b;
      b.count = pixels.next(x, y, &b.samples);
      if (b.count == 0) break;
      b.labels.assign(y.data<std::int32_t>(), y.data<std::int32_t>() + b.count);
      const std::uint8_t* p = x.data<std::uint8_t>();
      for (std::int64_t i = 0; i < b.count * 3 * plane; ++i) {
        const int c = static_cast<int>(i / plane % 3);
        b.x.push_back(p[i] * (1.0f / (255.0f * std[c])) - mean[c] / std[c]);
        some_pixel_inside |= p[i] > 0 && p[i] < 255;
      }
      ASSERT_LT(at, expected.size());
      EXPECT_EQ(b, expected[at]) << "batch " << at << (train ? " (train)" : " (eval)");
    }
    EXPECT_EQ(at, expected.size());
    EXPECT_TRUE(some_pixel_inside);
  }
  ShardLoaderOptions bad = options();
  bad.x_dtype = DType::i64;
  EXPECT_NE(testing::error_of([&] {
              ShardLoader(index_, "train", 0, 1, bad);
            }).find("shard loader output i64: expected f32 or u8"),
            std::string::npos);
}

TEST_F(ShardLoaderTest, ChannelsLastIsTheSameSampleTransposed) {
  // NHWC batches (f32 and u8, training and evaluation) hold exactly the NCHW batches' values,
  // element [j, y, x, c] = [j, c, y, x], with the same samples and labels.
  for (const DType dtype : {DType::f32, DType::u8}) {
    for (const bool train : {true, false}) {
      ShardLoaderOptions o = options(train);
      o.x_dtype = dtype;
      ShardLoader planar(index_, "train", 0, 1, o);
      o.transform.channels_last = true;
      ShardLoader interleaved(index_, "train", 0, 1, o);
      EXPECT_EQ(interleaved.batch_shape(), (Shape{o.batch_size, kCrop, kCrop, 3}));
      planar.start_epoch(2);
      interleaved.start_epoch(2);
      Tensor xp = Tensor::empty(planar.batch_shape(), dtype);
      Tensor xi = Tensor::empty(interleaved.batch_shape(), dtype);
      Tensor yp = Tensor::zeros({o.batch_size}, DType::i32);
      Tensor yi = Tensor::zeros({o.batch_size}, DType::i32);
      const std::size_t bytes = dtype_size(dtype);
      const std::int64_t plane = kCrop * kCrop;
      int batches = 0;
      for (;; ++batches) {
        std::vector<std::int64_t> sp, si;
        const std::int64_t n = planar.next(xp, yp, &sp);
        ASSERT_EQ(interleaved.next(xi, yi, &si), n);
        if (n == 0) break;
        EXPECT_EQ(sp, si);
        const auto* p = static_cast<const std::uint8_t*>(xp.raw_data());
        const auto* q = static_cast<const std::uint8_t*>(xi.raw_data());
        bool same = std::equal(yp.data<std::int32_t>(), yp.data<std::int32_t>() + n,
                               yi.data<std::int32_t>());
        for (std::int64_t j = 0; j < n && same; ++j) {
          for (std::int64_t c = 0; c < 3; ++c) {
            for (std::int64_t at = 0; at < plane && same; ++at) {
              const std::size_t from = static_cast<std::size_t>((j * 3 + c) * plane + at) * bytes;
              const std::size_t to = static_cast<std::size_t>((j * plane + at) * 3 + c) * bytes;
              same = std::memcmp(p + from, q + to, bytes) == 0;
            }
          }
        }
        EXPECT_TRUE(same) << "batch " << batches << " " << dtype_name(dtype)
                          << (train ? " (train)" : " (eval)");
      }
      EXPECT_GT(batches, 0);
    }
  }
}

TEST_F(ShardLoaderTest, Errors) {
  auto l = loaders(1);
  ShardPosition other;
  other.samples = 99;
  EXPECT_NE(testing::error_of([&] {
              l[0]->start_epoch(other);
            }).find("saved over 99 train samples, the shards hold 21"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] { ShardPosition::decode("shards 1 epoch x"); }).find("unreadable"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              ShardLoader(index_, "test", 0, 1, options());
            }).find("no test samples"),
            std::string::npos);
  // A shard cut short after the index was written: the sample read names the
  // file and offset.
  const ShardInfo last = index_.split("train").back();
  fs::resize_file(fs::path(index_.dir) / last.file, last.offsets.back() + 100);
  auto broken = loaders(1);
  broken[0]->start_epoch(0);
  const std::string e = testing::error_of([&] { take(*broken[0]); });
  EXPECT_NE(e.find(last.file + ": truncated at byte"), std::string::npos) << e;
}

}  // namespace
}  // namespace ruche
