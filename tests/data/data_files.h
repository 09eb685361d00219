// Writing small dataset files for the data tests: IDX (plain or gzip), CIFAR batches.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ruche::testing {

// A fresh directory under the temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        std::filesystem::temp_directory_path() / ("ruche_data_" + std::to_string(getpid()) + "_" +
                                                  info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

// An IDX file of unsigned bytes: magic 0x0000080<ndim>, big-endian dims, data.
inline std::string idx_bytes(const std::vector<std::uint32_t>& dims,
                             const std::vector<std::uint8_t>& data) {
  std::string b = {0, 0, 8, static_cast<char>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      b.push_back(static_cast<char>((d >> shift) & 0xFF));
  }
  b.append(data.begin(), data.end());
  return b;
}

// n images of h x w where pixel (i, y, x) = (i * 7 + y * w + x) % 256, label i % classes.
inline void write_idx_split(const std::string& dir, const std::string& prefix, std::uint32_t n,
                            std::uint32_t h, std::uint32_t w, int classes, bool gzip) {
  std::vector<std::uint8_t> pixels, labels;
  for (std::uint32_t i = 0; i < n; ++i) {
    for (std::uint32_t p = 0; p < h * w; ++p)
      pixels.push_back(static_cast<std::uint8_t>((i * 7 + p) % 256));
    labels.push_back(static_cast<std::uint8_t>(static_cast<int>(i) % classes));
  }
  const std::string ext = gzip ? ".gz" : "";
  write_bytes(dir + "/" + prefix + "-images-idx3-ubyte" + ext, idx_bytes({n, h, w}, pixels), gzip);
  write_bytes(dir + "/" + prefix + "-labels-idx1-ubyte" + ext, idx_bytes({n}, labels), gzip);
}

// n CIFAR records; pixel (i, p) = (i + p) % 256; fine label i % fine_classes (CIFAR-100 adds a
// coarse label byte i % 20 first).
inline std::string cifar_bytes(int n, bool cifar100, int fine_classes) {
  std::string b;
  for (int i = 0; i < n; ++i) {
    if (cifar100) b.push_back(static_cast<char>(i % 20));
    b.push_back(static_cast<char>(i % fine_classes));
    for (int p = 0; p < 3072; ++p) b.push_back(static_cast<char>((i + p) % 256));
  }
  return b;
}

}  // namespace ruche::testing
