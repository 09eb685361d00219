// IDX, CIFAR, npz and synthetic sources; open_dataset's choices and messages.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/data/cifar.h"
#include "engine/data/idx.h"
#include "engine/data/open.h"
#include "engine/tensor/npz.h"
#include "tests/data/data_files.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::TempDir;

std::vector<float> read_sample(const Dataset& d, std::int64_t i) {
  std::vector<float> x(static_cast<std::size_t>(d.sample_numel()));
  d.read(i, x.data());
  return x;
}

TEST(Idx, ReadsGzipAndPlainFiles) {
  for (bool gzip : {true, false}) {
    SCOPED_TRACE(gzip ? "gzip" : "plain");
    TempDir dir;
    testing::write_idx_split(dir.str(), "train", 12, 4, 5, 3, gzip);
    testing::write_idx_split(dir.str(), "t10k", 6, 4, 5, 3, gzip);
    const DataSources s = load_idx_dir(dir.str());
    ASSERT_NE(s.train, nullptr);
    ASSERT_NE(s.test, nullptr);
    EXPECT_EQ(s.train->size(), 12);
    EXPECT_EQ(s.test->size(), 6);
    EXPECT_EQ(s.train->sample_shape(), (Shape{1, 4, 5}));
    EXPECT_EQ(s.train->num_classes(), 10);  // MNIST digits, whatever the labels used
    EXPECT_EQ(s.train->kind(), "mnist");
    EXPECT_EQ(s.train->label(7), 1);
    const std::vector<float> x = read_sample(*s.train, 3);
    EXPECT_FLOAT_EQ(x[0], 21.0f / 255.0f);
    EXPECT_FLOAT_EQ(x[19], 40.0f / 255.0f);
  }
}

TEST(Idx, FashionPathGivesFashionNames) {
  TempDir dir;
  const std::string fashion = dir / "fashion-mnist";
  std::filesystem::create_directories(fashion);
  testing::write_idx_split(fashion, "train", 4, 2, 2, 10, true);
  const DataSources s = open_dataset({fashion});
  EXPECT_EQ(s.train->kind(), "fashion-mnist");
  EXPECT_EQ(s.train->class_names(), fashion_mnist_class_names());
  EXPECT_EQ(s.test, nullptr);
}

TEST(Idx, TruncatedFileNamesFileAndCounts) {
  TempDir dir;
  testing::write_idx_split(dir.str(), "train", 10, 3, 3, 2, false);
  std::string bytes = testing::idx_bytes({10, 3, 3}, std::vector<std::uint8_t>(50, 1));
  testing::write_bytes(dir / "train-images-idx3-ubyte", bytes, false);
  const std::string e = error_of([&] { load_idx_dir(dir.str()); });
  EXPECT_NE(e.find("train-images-idx3-ubyte: truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("10 x 3 x 3 = 90 bytes"), std::string::npos) << e;
  EXPECT_NE(e.find("has 50"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(Idx, TruncatedGzipIsAnError) {
  TempDir dir;
  testing::write_idx_split(dir.str(), "train", 200, 28, 28, 10, true);
  const std::string path = dir / "train-images-idx3-ubyte.gz";
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  const std::string e = error_of([&] { load_idx_dir(dir.str()); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(Idx, WrongMagicNamesExpectedMagic) {
  TempDir dir;
  testing::write_idx_split(dir.str(), "train", 4, 2, 2, 2, false);
  // A labels file where the images file belongs.
  std::filesystem::copy_file(dir / "train-labels-idx1-ubyte", dir / "train-images-idx3-ubyte",
                             std::filesystem::copy_options::overwrite_existing);
  const std::string e = error_of([&] { load_idx_dir(dir.str()); });
  EXPECT_NE(e.find("magic number 0x00000801, expected 0x00000803"), std::string::npos) << e;
}

TEST(Idx, LabelCountMustMatchImages) {
  TempDir dir;
  testing::write_idx_split(dir.str(), "train", 4, 2, 2, 2, false);
  testing::write_bytes(dir / "train-labels-idx1-ubyte", testing::idx_bytes({3}, {0, 1, 0}), false);
  const std::string e = error_of([&] { load_idx_dir(dir.str()); });
  EXPECT_NE(e.find("3 labels, expected 4"), std::string::npos) << e;
}

TEST(Idx, RealFashionMnist) {
  if (!is_idx_dir(kDefaultDataDir))
    GTEST_SKIP() << "Fashion-MNIST not installed at " << kDefaultDataDir;
  const DataSources s = open_dataset({});
  EXPECT_EQ(s.train->size(), 60000);
  ASSERT_NE(s.test, nullptr);
  EXPECT_EQ(s.test->size(), 10000);
  EXPECT_EQ(s.train->sample_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(s.train->num_classes(), 10);
  EXPECT_EQ(s.train->class_names()[9], "Ankle boot");
  std::vector<int> counts(10);
  for (std::int64_t i = 0; i < s.train->size(); ++i)
    ++counts[static_cast<std::size_t>(s.train->label(i))];
  for (int c : counts) EXPECT_EQ(c, 6000);
  EXPECT_EQ(s.train->label(0), 9);  // the first training image is an ankle boot
}

TEST(Open, MissingDefaultDatasetSaysHowToGetIt) {
  TempDir dir;
  DataSpec spec;
  spec.default_dir = dir / "fashion-mnist";  // absent, as on a machine without the package
  EXPECT_EQ(error_of([&] { open_dataset(spec); }),
            "Fashion-MNIST not found at " + spec.default_dir +
                ": install it with `make deps` (Debian package dataset-fashion-mnist) or pass "
                "--data DIR");
  // Naming the default directory explicitly is the same mistake.
  DataSpec named(spec.default_dir + "/");
  named.default_dir = spec.default_dir;
  EXPECT_EQ(error_of([&] { open_dataset(named); }), error_of([&] { open_dataset(spec); }));
}

TEST(Open, UnknownFormatNamesTheFormatsRucheReads) {
  TempDir dir;
  std::filesystem::create_directories(dir / "other/cat");
  const std::string e = error_of([&] { open_dataset({dir.str()}); });
  EXPECT_NE(e.find("not a dataset ruche reads"), std::string::npos) << e;
  EXPECT_NE(e.find("IDX"), std::string::npos) << e;
  EXPECT_NE(e.find("CIFAR-10/100"), std::string::npos) << e;
  EXPECT_NE(e.find(".npz"), std::string::npos) << e;
  EXPECT_NE(e.find("synthetic"), std::string::npos) << e;
  EXPECT_NE(e.find("ImageFolder"), std::string::npos) << e;
  EXPECT_NE(e.find("WebDataset .tar shards"), std::string::npos) << e;
  EXPECT_NE(e.find("ruche index"), std::string::npos) << e;
  EXPECT_EQ(e.find("not supported"), std::string::npos) << e;
  // train/<class> makes it an ImageFolder, whose empty class folder is the error.
  std::filesystem::create_directories(dir / "train/cat");
  EXPECT_NE(error_of([&] { open_dataset({dir.str()}); }).find("train/cat: no JPEG files"),
            std::string::npos);
  testing::write_bytes(dir / "shard-000.tar", "x", false);
  EXPECT_NE(error_of([&] {
              open_dataset({dir / "shard-000.tar"});
            }).find("shard-000.tar: .tar shards are read by `ruche train`"),
            std::string::npos);
  EXPECT_NE(error_of([&] { open_dataset({dir / "nope"}); }).find("no such file or directory"),
            std::string::npos);
}

TEST(Cifar, Cifar10Batches) {
  TempDir dir;
  for (int i = 1; i <= 5; ++i) {
    testing::write_bytes(dir / ("data_batch_" + std::to_string(i) + ".bin"),
                         testing::cifar_bytes(3, false, 10), false);
  }
  testing::write_bytes(dir / "test_batch.bin", testing::cifar_bytes(4, false, 10), false);
  const DataSources s = open_dataset({dir.str()});
  EXPECT_EQ(s.train->size(), 15);
  EXPECT_EQ(s.test->size(), 4);
  EXPECT_EQ(s.train->sample_shape(), (Shape{3, 32, 32}));
  EXPECT_EQ(s.train->kind(), "cifar10");
  EXPECT_EQ(s.train->class_names()[0], "airplane");
  EXPECT_EQ(s.train->label(5), 2);  // record 2 of the second batch
  const std::vector<float> x = read_sample(*s.train, 5);
  EXPECT_FLOAT_EQ(x[0], 2.0f / 255.0f);
  EXPECT_FLOAT_EQ(x[1024], (2 + 1024) % 256 / 255.0f);  // green plane
}

TEST(Cifar, Cifar100UsesFineLabels) {
  TempDir dir;
  testing::write_bytes(dir / "train.bin", testing::cifar_bytes(30, true, 100), false);
  testing::write_bytes(dir / "test.bin", testing::cifar_bytes(5, true, 100), false);
  const DataSources s = open_dataset({dir.str()});
  EXPECT_EQ(s.train->kind(), "cifar100");
  EXPECT_EQ(s.train->num_classes(), 100);
  EXPECT_EQ(s.train->label(25), 25);  // the coarse label would be 5
  EXPECT_FLOAT_EQ(read_sample(*s.train, 25)[0], 25.0f / 255.0f);
}

TEST(Cifar, PartialRecordIsAnError) {
  TempDir dir;
  testing::write_bytes(dir / "train.bin", testing::cifar_bytes(2, true, 100).substr(0, 5000),
                       false);
  const std::string e = error_of([&] { open_dataset({dir.str()}); });
  EXPECT_NE(e.find("train.bin: 5000 bytes, expected a whole number of CIFAR-100 records of 3074"),
            std::string::npos)
      << e;
}

TEST(Npz, NhwcIsTransposedToNchw) {
  TempDir dir;
  // 2 samples of 2x3 pixels, 2 channels, NHWC: value = 100 n + 10 c + (3 y + x).
  std::vector<float> nhwc;
  for (int n = 0; n < 2; ++n)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x)
        for (int c = 0; c < 2; ++c)
          nhwc.push_back(static_cast<float>(100 * n + 10 * c + 3 * y + x));
  const std::string path = dir / "d.npz";
  save_npz(path, {{"x", Tensor::from_vector(nhwc, {2, 2, 3, 2})},
                  {"y", Tensor::from_vector(std::vector<std::int64_t>{1, 4}, {2})}});
  DataSpec spec{path};
  spec.layout = DataLayout::nhwc;
  const DataSources s = open_dataset(spec);
  EXPECT_EQ(s.train->sample_shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(s.train->num_classes(), 5);
  EXPECT_EQ(s.train->label(1), 4);
  EXPECT_EQ(s.test, nullptr);
  const std::vector<float> x = read_sample(*s.train, 1);
  for (int c = 0; c < 2; ++c)
    for (int p = 0; p < 6; ++p) EXPECT_EQ(x[static_cast<std::size_t>(c * 6 + p)], 100 + 10 * c + p);
  // The same file read as NCHW keeps the stored order: shape [2, 3, 2].
  spec.layout = DataLayout::nchw;
  EXPECT_EQ(open_dataset(spec).train->sample_shape(), (Shape{2, 3, 2}));
}

TEST(Npz, KerasNamesAndErrors) {
  TempDir dir;
  const std::string path = dir / "k.npz";
  save_npz(path, {{"x_train", Tensor::zeros({4, 3, 3}, DType::u8)},
                  {"y_train", Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, 1}, {4})},
                  {"x_test", Tensor::zeros({2, 3, 3}, DType::u8)},
                  {"y_test", Tensor::from_vector(std::vector<std::int32_t>{0, 3}, {2})}});
  const DataSources s = open_dataset({path});
  EXPECT_EQ(s.train->sample_shape(), (Shape{1, 3, 3}));
  EXPECT_EQ(s.train->num_classes(), 4);
  EXPECT_EQ(s.test->num_classes(), 4);
  const std::string bad = dir / "bad.npz";
  save_npz(bad, {{"images", Tensor::zeros({4, 3})}});
  const std::string e = error_of([&] { open_dataset({bad}); });
  EXPECT_NE(e.find("expected arrays x (float32 [N, ...]) and y (int [N])"), std::string::npos) << e;
  EXPECT_NE(e.find("found images"), std::string::npos) << e;
  EXPECT_NE(error_of([] { parse_data_layout("hwc"); }).find("expected nchw or nhwc"),
            std::string::npos);
}

TEST(Synthetic, DeterministicAndSized) {
  DataSpec spec{"synthetic"};
  spec.synthetic.sample_shape = Shape{3, 8, 8};
  spec.synthetic.num_classes = 7;
  spec.synthetic.size = 1000;
  const DataSources a = open_dataset(spec), b = open_dataset(spec);
  EXPECT_EQ(a.train->size(), 1000);
  EXPECT_EQ(a.train->num_classes(), 7);
  EXPECT_EQ(read_sample(*a.train, 3), read_sample(*b.train, 3));
  EXPECT_NE(read_sample(*a.train, 3), read_sample(*a.train, 4));
  std::vector<int> counts(7);
  for (std::int64_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(a.train->label(i), b.train->label(i));
    ++counts[static_cast<std::size_t>(a.train->label(i))];
  }
  for (int c : counts) EXPECT_GT(c, 80);
}

}  // namespace
}  // namespace ruche
