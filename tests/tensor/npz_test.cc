#include "engine/tensor/npz.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/errors.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

// A fresh directory per test, removed afterwards.
class Npz : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ruche_npz_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

std::string fixture(const std::string& name) {
  const char* src = std::getenv("RUCHE_SOURCE_DIR");
  if (!src) throw Error("RUCHE_SOURCE_DIR is not set: run the tests through ctest");
  return std::string(src) + "/tests/data/" + name;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::pair<std::string, Tensor>> sample_arrays() {
  return {
      {"layer1.0.conv1.weight", Tensor::from_vector({1.5f, -2, 0, 3e-8f, 7, 8}, {1, 2, 3})},
      {"layer1.0.bn1.num_batches_tracked", Tensor::from_vector<std::int64_t>({1234567890123}, {})},
      {"y", Tensor::from_vector<std::int32_t>({0, 9, -3}, {3})},
      {"pixels", Tensor::from_vector<std::uint8_t>({0, 255}, {2, 1})},
      {"empty", Tensor::zeros({0, 4})},
  };
}

// The numpy fixtures' contents (tests/data/make_npz_fixtures.py).
void expect_fixture_arrays(const std::map<std::string, Tensor>& a) {
  const Tensor& w = a.at("layer1.0.conv1.weight");
  EXPECT_EQ(w.shape(), (Shape{2, 3, 2, 2}));
  const auto wv = w.to_vector<float>();
  for (int i = 0; i < 24; ++i) EXPECT_EQ(wv[i], (i - 10) / 4.0f);
  const Tensor& n = a.at("layer1.0.bn1.num_batches_tracked");
  EXPECT_EQ(n.ndim(), 0);
  EXPECT_EQ(n.to_vector<std::int64_t>(), (std::vector<std::int64_t>{7}));
  EXPECT_EQ(a.at("labels").to_vector<std::int32_t>(),
            (std::vector<std::int32_t>{3, -1, 0, 2147483647}));
  EXPECT_EQ(a.at("pixels").shape(), (Shape{1, 3}));
  EXPECT_EQ(a.at("pixels").to_vector<std::uint8_t>(), (std::vector<std::uint8_t>{0, 128, 255}));
}

TEST_F(Npz, RoundTripKeepsNamesDtypesShapesAndValues) {
  const auto arrays = sample_arrays();
  save_npz(path("a.npz"), arrays);
  EXPECT_FALSE(fs::exists(path("a.npz.tmp")));
  EXPECT_EQ(list_npz(path("a.npz")),
            (std::vector<std::string>{"layer1.0.conv1.weight", "layer1.0.bn1.num_batches_tracked",
                                      "y", "pixels", "empty"}));
  const auto back = load_npz(path("a.npz"));
  ASSERT_EQ(back.size(), arrays.size());
  for (const auto& [name, t] : arrays) {
    const Tensor& b = back.at(name);
    EXPECT_EQ(b.shape(), t.shape()) << name;
    EXPECT_EQ(b.dtype(), t.dtype()) << name;
    ASSERT_EQ(b.nbytes(), t.nbytes()) << name;
    EXPECT_EQ(std::memcmp(b.raw_data(), t.raw_data(), t.nbytes()), 0) << name;
  }
}

TEST_F(Npz, SavingTwiceReplacesTheFile) {
  save_npz(path("a.npz"), sample_arrays());
  save_npz(path("a.npz"), {{"only", Tensor::from_vector({1.0f}, {1})}});
  EXPECT_EQ(list_npz(path("a.npz")), (std::vector<std::string>{"only"}));
  EXPECT_FALSE(fs::exists(path("a.npz.tmp")));
}

TEST_F(Npz, StridedTensorsAreWrittenInRowMajorOrder) {
  const Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}).transpose(0, 1);
  save_npz(path("t.npz"), {{"t", t}});
  const Tensor back = load_npz(path("t.npz")).at("t");
  EXPECT_EQ(back.shape(), (Shape{3, 2}));
  EXPECT_EQ(back.to_vector(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST_F(Npz, BadArgumentsLeaveNoFile) {
  const Tensor t = Tensor::from_vector({1.0f}, {1});
  EXPECT_NE(error_of([&] {
              save_npz(path("d.npz"), {{"a", t}, {"a", t}});
            }).find("twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] { save_npz(path("d.npz"), {{"", t}}); }).find("name"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("d.npz")));
  EXPECT_FALSE(fs::exists(path("d.npz.tmp")));
}

TEST_F(Npz, ReadsNumpySavez) { expect_fixture_arrays(load_npz(fixture("numpy_stored.npz"))); }

TEST_F(Npz, ReadsNumpySavezCompressed) {
  const auto a = load_npz(fixture("numpy_compressed.npz"));
  expect_fixture_arrays(a);
  const auto big = a.at("big").to_vector<float>();
  ASSERT_EQ(big.size(), 400u);
  for (std::size_t i = 0; i < big.size(); ++i) EXPECT_EQ(big[i], i % 2 ? -2.0f : 1.5f);
}

TEST_F(Npz, NumpyReadsOurs) {
  const char* python = std::getenv("RUCHE_PYTHON");
  ASSERT_NE(python, nullptr) << "RUCHE_PYTHON is not set: run the tests through ctest";
  save_npz(path("ours.npz"), sample_arrays());
  const std::string script = path("check.py");
  write_bytes(script,
              "import sys, numpy as np\n"
              "d = np.load(sys.argv[1])\n"
              "assert list(d.keys()) == ['layer1.0.conv1.weight', "
              "'layer1.0.bn1.num_batches_tracked', 'y', 'pixels', 'empty'], list(d.keys())\n"
              "w = d['layer1.0.conv1.weight']\n"
              "assert w.dtype == np.float32 and w.shape == (1, 2, 3)\n"
              "assert (w.ravel() == np.float32([1.5, -2, 0, 3e-8, 7, 8])).all()\n"
              "n = d['layer1.0.bn1.num_batches_tracked']\n"
              "assert n.dtype == np.int64 and n.shape == () and n == 1234567890123\n"
              "assert d['y'].dtype == np.int32 and list(d['y']) == [0, 9, -3]\n"
              "assert d['pixels'].dtype == np.uint8 and d['pixels'].shape == (2, 1)\n"
              "assert d['empty'].shape == (0, 4)\n");
  const std::string command = std::string(python) + " " + script + " " + path("ours.npz") + " 1>&2";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

TEST_F(Npz, MissingFileIsNamed) {
  const std::string err = error_of([&] { load_npz(path("nope.npz")); });
  EXPECT_NE(err.find(path("nope.npz")), std::string::npos) << err;
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}

TEST_F(Npz, TruncatedFilesAreErrorsNamingTheFile) {
  save_npz(path("a.npz"), sample_arrays());
  const std::string bytes = read_bytes(path("a.npz"));
  for (std::size_t keep : {std::size_t{0}, std::size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    write_bytes(path("cut.npz"), bytes.substr(0, keep));
    const std::string err = error_of([&] { load_npz(path("cut.npz")); });
    EXPECT_NE(err.find(path("cut.npz")), std::string::npos) << keep << ": " << err;
  }
}

TEST_F(Npz, ShortenedCentralDirectoryIsAnError) {
  save_npz(path("a.npz"), sample_arrays());
  std::string bytes = read_bytes(path("a.npz"));
  bytes.erase(bytes.size() - 22 - 30, 30);  // 30 bytes out of the directory, end record kept
  write_bytes(path("cd.npz"), bytes);
  const std::string err = error_of([&] { load_npz(path("cd.npz")); });
  EXPECT_NE(err.find("central directory"), std::string::npos) << err;
  EXPECT_NE(err.find(path("cd.npz")), std::string::npos) << err;
}

TEST_F(Npz, FlippedDataByteFailsTheCrc) {
  save_npz(path("a.npz"), {{"x", Tensor::from_vector({1, 2, 3, 4}, {4})}});
  std::string bytes = read_bytes(path("a.npz"));
  const std::size_t at = bytes.find("x.npy") + 5 + 128 + 2;  // inside the float data
  bytes[at] = static_cast<char>(bytes[at] ^ 0x40);
  write_bytes(path("crc.npz"), bytes);
  const std::string err = error_of([&] { load_npz(path("crc.npz")); });
  EXPECT_NE(err.find("CRC32 mismatch"), std::string::npos) << err;
  EXPECT_NE(err.find("x.npy"), std::string::npos) << err;
}

TEST_F(Npz, CorruptDeflateDataIsAnError) {
  std::string bytes = read_bytes(fixture("numpy_compressed.npz"));
  const std::size_t at = bytes.find("big.npy") + 7 + 20 + 10;  // past zip64 extra, into deflate
  for (std::size_t i = at; i < at + 16; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  write_bytes(path("bad.npz"), bytes);
  const std::string err = error_of([&] { load_npz(path("bad.npz")); });
  EXPECT_NE(err.find("big.npy"), std::string::npos) << err;
  EXPECT_NE(err.find(path("bad.npz")), std::string::npos) << err;
}

TEST_F(Npz, NotAZipFileIsAnError) {
  write_bytes(path("text.npz"), std::string(100, 'a'));
  const std::string err = error_of([&] { load_npz(path("text.npz")); });
  EXPECT_NE(err.find("no end of central directory"), std::string::npos) << err;
}

}  // namespace
}  // namespace ruche
