#include "engine/log/tensorboard.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cfloat>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "engine/error.h"
#include "engine/log/confusion_image.h"
#include "engine/log/png.h"
#include "engine/log/tensorboard_reader.h"

namespace ruche {
namespace {

std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string only_event_file(const std::filesystem::path& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path().string());
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? "" : files[0];
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Values from TensorFlow's masked_crc32c (tensorboard.compat.tensorflow_stub) and RFC 3720.
TEST(TensorBoard, MaskedCrc32cKnownVectors) {
  EXPECT_EQ(masked_crc32c("", 0), 0xa282ead8u);
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xc78ab0e5u);  // crc32c 0xe3069283
  EXPECT_EQ(masked_crc32c("a", 1), 0x28e46e78u);
  const std::vector<char> zeros(32, 0);
  EXPECT_EQ(masked_crc32c(zeros.data(), zeros.size()), 0x0fd7fffau);  // crc32c 0x8a9136aa
  const std::uint64_t thirteen = 13;
  EXPECT_EQ(masked_crc32c(&thirteen, 8), 0x34b8373cu);
}

TEST(TensorBoard, RecordFraming) {
  const std::string data = "brain.Event:2";
  const std::string r = tfrecord(data);
  ASSERT_EQ(r.size(), 8 + 4 + data.size() + 4);
  std::uint64_t length;
  std::uint32_t length_crc, data_crc;
  std::memcpy(&length, r.data(), 8);
  std::memcpy(&length_crc, r.data() + 8, 4);
  std::memcpy(&data_crc, r.data() + 12 + data.size(), 4);
  EXPECT_EQ(length, 13u);
  EXPECT_EQ(length_crc, 0x34b8373cu);
  EXPECT_EQ(r.substr(12, data.size()), data);
  EXPECT_EQ(data_crc, masked_crc32c(data.data(), data.size()));
}

TEST(TensorBoard, HistogramUsesTensorBoardBuckets) {
  const std::vector<float> v = {0.0f, 1.0f, 1.0f, -1.0f, 1e-13f, 2.5f, -3e5f};
  const tensorboard::HistogramProto h = make_histogram(v.data(), std::ssize(v));
  EXPECT_EQ(h.num(), 7);
  EXPECT_FLOAT_EQ(h.min(), -3e5f);
  EXPECT_FLOAT_EQ(h.max(), 2.5f);
  EXPECT_NEAR(h.sum(), 1 + 1 - 1 + 1e-13 + 2.5 - 3e5, 1e-3);
  EXPECT_NEAR(h.sum_squares(), 1 + 1 + 1 + 6.25 + 9e10, 1e3);
  ASSERT_EQ(h.bucket_limit_size(), h.bucket_size());
  // Edges ascend, end at DBL_MAX, and every value lies in the non-empty bucket [previous, edge).
  double total = 0;
  for (int i = 0; i < h.bucket_size(); ++i) {
    if (i) {
      EXPECT_LT(h.bucket_limit(i - 1), h.bucket_limit(i));
    }
    total += h.bucket(i);
  }
  EXPECT_EQ(total, 7);
  EXPECT_EQ(h.bucket_limit(h.bucket_limit_size() - 1), DBL_MAX);
  for (float x : v) {
    int i = 0;
    while (h.bucket_limit(i) <= x) ++i;
    EXPECT_GT(h.bucket(i), 0) << x;
    EXPECT_GE(x, i ? h.bucket_limit(i - 1) : -DBL_MAX) << x;
  }
  // 0 has its own bucket, ending at the first positive edge (1e-12), shared with 1e-13.
  int zero = 0;
  while (h.bucket_limit(zero) <= 0) ++zero;
  EXPECT_DOUBLE_EQ(h.bucket_limit(zero), 1e-12);
  EXPECT_EQ(h.bucket(zero), 2);
  // Two equal values share a bucket; edges grow by 10%.
  int one = 0;
  while (h.bucket_limit(one) <= 1.0) ++one;
  EXPECT_EQ(h.bucket(one), 2);
  EXPECT_GT(h.bucket_limit(one), 1.0);
  EXPECT_LT(h.bucket_limit(one), 1.1 + 1e-9);
}

TEST(TensorBoard, WritesAndReadsBackScalarsHistogramsImages) {
  const auto dir = fresh_dir("ruche_tensorboard_roundtrip");
  const std::vector<float> weights = {-0.5f, 0.25f, 0.25f, 2.0f};
  const std::string png = encode_png_rgb(2, 1, {255, 0, 0, 0, 0, 255});
  std::string path;
  {
    TensorBoardWriter tb;
    tb.add_scalar("ignored", 1.0, 0);  // not open yet: writes nothing
    tb.open(dir.string());
    path = tb.path();
    tb.add_scalar("train/loss", 0.75, 10);
    tb.add_scalar("train/loss", 0.5, 20);
    tb.add_histogram("weights/fc.weight", weights.data(), std::ssize(weights), 20);
    tb.add_image("val/confusion_matrix", png, 2, 1, 3, 20);
  }
  EXPECT_EQ(only_event_file(dir), path);
  EXPECT_NE(std::filesystem::path(path).filename().string().find("events.out.tfevents."),
            std::string::npos);
  EXPECT_TRUE(path.ends_with(".ruche"));
  const auto events = read_tensorboard_events(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_GT(events[0].wall_time(), 1.6e9);
  EXPECT_EQ(events[1].step(), 10);
  EXPECT_EQ(events[1].summary().value(0).tag(), "train/loss");
  EXPECT_FLOAT_EQ(events[1].summary().value(0).simple_value(), 0.75f);
  EXPECT_EQ(events[2].step(), 20);
  EXPECT_FLOAT_EQ(events[2].summary().value(0).simple_value(), 0.5f);
  const auto& h = events[3].summary().value(0).histo();
  EXPECT_EQ(events[3].summary().value(0).tag(), "weights/fc.weight");
  EXPECT_EQ(h.num(), 4);
  EXPECT_FLOAT_EQ(h.min(), -0.5f);
  EXPECT_FLOAT_EQ(h.max(), 2.0f);
  EXPECT_FLOAT_EQ(h.sum(), 2.0f);
  const auto& image = events[4].summary().value(0).image();
  EXPECT_EQ(image.width(), 2);
  EXPECT_EQ(image.height(), 1);
  EXPECT_EQ(image.colorspace(), 3);
  EXPECT_EQ(image.encoded_image_string(), png);
  std::filesystem::remove_all(dir);
}

TEST(TensorBoard, TruncatedOrDamagedFileIsAnError) {
  const auto dir = fresh_dir("ruche_tensorboard_damaged");
  std::string path;
  {
    TensorBoardWriter tb;
    tb.open(dir.string());
    path = tb.path();
    tb.add_scalar("train/loss", 0.5, 1);
  }
  const std::string whole = slurp(path);
  ASSERT_EQ(read_tensorboard_events(path).size(), 2u);
  for (std::size_t cut : {std::size_t{3}, std::size_t{5}, whole.size() - 20}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << whole.substr(0, whole.size() - cut);
    EXPECT_THROW(read_tensorboard_events(path), Error) << "cut " << cut;
  }
  std::string flipped = whole;
  flipped[whole.size() - 6] ^= 0x01;  // inside the last record's data
  std::ofstream(path, std::ios::binary | std::ios::trunc) << flipped;
  try {
    read_tensorboard_events(path);
    ADD_FAILURE() << "a flipped bit was not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad data crc"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

// Chunks of a PNG (crc checked), the IDAT inflated back into its filtered scanlines.
struct DecodedPng {
  std::uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  std::string scanlines;
};

std::uint32_t be32(const std::string& s, std::size_t at) {
  return (std::uint32_t(std::uint8_t(s[at])) << 24) |
         (std::uint32_t(std::uint8_t(s[at + 1])) << 16) |
         (std::uint32_t(std::uint8_t(s[at + 2])) << 8) | std::uint8_t(s[at + 3]);
}

DecodedPng decode_png(const std::string& png) {
  DecodedPng out;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::string idat;
  for (std::size_t at = 8; at < png.size();) {
    const std::uint32_t n = be32(png, at);
    const std::string type = png.substr(at + 4, 4);
    const std::string data = png.substr(at + 8, n);
    const auto crc = crc32(0L, reinterpret_cast<const Bytef*>(png.data() + at + 4), n + 4);
    EXPECT_EQ(be32(png, at + 8 + n), crc) << type;
    if (type == "IHDR") {
      out.width = be32(data, 0);
      out.height = be32(data, 4);
      out.bit_depth = static_cast<unsigned char>(data[8]);
      out.color_type = static_cast<unsigned char>(data[9]);
    }
    if (type == "IDAT") idat += data;
    at += 12 + n;
  }
  uLongf size = (out.width * 3 + 1) * out.height;
  out.scanlines.resize(size);
  EXPECT_EQ(uncompress(reinterpret_cast<Bytef*>(out.scanlines.data()), &size,
                       reinterpret_cast<const Bytef*>(idat.data()), idat.size()),
            Z_OK);
  return out;
}

TEST(TensorBoard, PngHoldsThePixels) {
  const std::vector<std::uint8_t> rgb = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // 2 x 2
  const DecodedPng d = decode_png(encode_png_rgb(2, 2, rgb));
  EXPECT_EQ(d.width, 2u);
  EXPECT_EQ(d.height, 2u);
  EXPECT_EQ(d.bit_depth, 8);
  EXPECT_EQ(d.color_type, 2);  // RGB
  EXPECT_EQ(d.scanlines, std::string("\0\1\2\3\4\5\6\0\7\10\11\12\13\14", 14));
}

TEST(TensorBoard, ConfusionImageShadesByRecall) {
  ConfusionMatrix m(2);
  m.add(0, 0, 3);
  m.add(0, 1, 1);
  m.add(1, 1, 5);  // class 1 always right, class 0 three times in four
  const PngImage image = confusion_image(m, 2);
  EXPECT_EQ(image.width, 4);
  EXPECT_EQ(image.height, 4);
  const DecodedPng d = decode_png(image.png);
  auto red = [&](int x, int y) { return std::uint8_t(d.scanlines[y * (4 * 3 + 1) + 1 + x * 3]); };
  EXPECT_EQ(red(2, 2), 8);    // (1, 1): recall 1, the darkest
  EXPECT_EQ(red(2, 0), 193);  // (0, 1): a quarter of the way to dark (255 - 0.25 * 247)
  EXPECT_EQ(red(0, 0), 70);   // (0, 0): three quarters
  EXPECT_EQ(red(0, 2), 255);  // (1, 0): none
}

}  // namespace
}  // namespace ruche
