// JPEG decode (RGB, gray, CMYK / YCCK, DCT scaling, window decodes, corrupt data), the ImageNet
// transforms' geometry (RandomResizedCrop's box against its analytic distribution) and
// ImageFolder.
// The resampling against PIL / torchvision is tests/data/image_reference.py.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/data/image_folder.h"
#include "engine/data/image_transform.h"
#include "engine/data/jpeg.h"
#include "engine/data/open.h"
#include "engine/data/split.h"
#include "tests/data/data_files.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::TempDir;

Image8 solid(int width, int height, std::vector<std::uint8_t> value) {
  Image8 im;
  im.width = width;
  im.height = height;
  im.channels = static_cast<int>(value.size());
  for (int i = 0; i < width * height; ++i)
    im.pixels.insert(im.pixels.end(), value.begin(), value.end());
  return im;
}

// A smooth pattern (JPEG keeps it well), so crops and scales show in the pixels.
Image8 gradient(int width, int height) {
  Image8 im;
  im.width = width;
  im.height = height;
  im.channels = 3;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      im.pixels.push_back(static_cast<std::uint8_t>(255 * x / width));
      im.pixels.push_back(static_cast<std::uint8_t>(255 * y / height));
      im.pixels.push_back(static_cast<std::uint8_t>(128 + 100 * std::sin(x * 0.05 + y * 0.03)));
    }
  return im;
}

std::vector<double> channel_means(const Image8& im) {
  std::vector<double> sum(static_cast<std::size_t>(im.channels));
  for (std::size_t i = 0; i < im.pixels.size(); ++i) sum[i % sum.size()] += im.pixels[i];
  for (double& s : sum) s /= static_cast<double>(im.width) * im.height;
  return sum;
}

Image8 decode(const std::vector<std::uint8_t>& bytes, int scale = 8) {
  return decode_jpeg_rgb(bytes.data(), bytes.size(), "test.jpg", scale);
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

TEST(Jpeg, SolidColoursDecodeToTheirRgb) {
  const Image8 rgb = decode(encode_jpeg(solid(37, 29, {200, 30, 90}), 95));
  ASSERT_EQ(rgb.width, 37);
  ASSERT_EQ(rgb.height, 29);
  ASSERT_EQ(rgb.channels, 3);
  const auto m = channel_means(rgb);
  EXPECT_NEAR(m[0], 200, 2.0);
  EXPECT_NEAR(m[1], 30, 2.0);
  EXPECT_NEAR(m[2], 90, 2.0);

  const Image8 gray = decode(encode_jpeg(solid(20, 31, {120}), 95));
  ASSERT_EQ(gray.channels, 3);
  for (double v : channel_means(gray)) EXPECT_NEAR(v, 120, 1.0);
}

TEST(Jpeg, AdobeCmykAndYcckDecodeAsPil) {
  // Ink C 50, M 100, Y 0, K 30, stored inverted as Photoshop does. PIL: R = (255 - C)(255 - K)
  // / 255 = 180.9, G = 136.8, B = 225.
  for (bool ycck : {false, true}) {
    SCOPED_TRACE(ycck ? "YCCK" : "CMYK");
    const auto bytes =
        encode_jpeg(solid(24, 16, {255 - 50, 255 - 100, 255 - 0, 255 - 30}), 98, ycck);
    EXPECT_EQ(jpeg_info(bytes.data(), bytes.size(), "cmyk.jpg").components, 4);
    const auto m = channel_means(decode(bytes));
    EXPECT_NEAR(m[0], 180.9, 2.0);
    EXPECT_NEAR(m[1], 136.8, 2.0);
    EXPECT_NEAR(m[2], 225.0, 2.0);
  }
}

TEST(Jpeg, HeaderAndDctScaling) {
  const auto bytes = encode_jpeg(gradient(500, 375), 90);
  const JpegInfo info = jpeg_info(bytes.data(), bytes.size(), "g.jpg");
  EXPECT_EQ(info.width, 500);
  EXPECT_EQ(info.height, 375);
  EXPECT_EQ(info.components, 3);
  for (int s = 1; s <= 8; ++s) {
    const Image8 im = decode(bytes, s);
    EXPECT_EQ(im.width, (500 * s + 7) / 8) << s;
    EXPECT_EQ(im.height, (375 * s + 7) / 8) << s;
    EXPECT_EQ(im.width, jpeg_scaled_size(500, s));
    // A scaled decode is the same picture: its mean colour stays put.
    const auto full = channel_means(decode(bytes)), scaled = channel_means(im);
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(scaled[static_cast<std::size_t>(c)], full[static_cast<std::size_t>(c)], 2.0);
  }
  // The smallest of 1/8, 2/8 and 4/8 that keeps a region at 224 pixels or more, else full size
  // (5/8 would keep 375 pixels at 234, but decodes slower than 8/8).
  EXPECT_EQ(smallest_dct_scale(375, 224), 8);
  EXPECT_EQ(smallest_dct_scale(448, 224), 4);
  EXPECT_EQ(smallest_dct_scale(447, 224), 8);
  EXPECT_EQ(smallest_dct_scale(900, 224), 2);
  EXPECT_EQ(smallest_dct_scale(2000, 224), 1);
  EXPECT_EQ(smallest_dct_scale(230, 224), 8);
  EXPECT_EQ(smallest_dct_scale(100, 224), 8);
}

// A window decode (crop_scanline + skip_scanlines) has a whole decode's pixels inside the window,
// at full size and scaled, with chroma subsampled (fancy upsampling at the cut) or not.
TEST(Jpeg, WindowDecodeHasTheWholeDecodesPixels) {
  Image8 gray = gradient(203, 150);
  gray.channels = 1;
  gray.pixels.resize(203 * 150);
  for (const Image8& source : {gradient(203, 150), gray}) {
    const std::vector<std::uint8_t> bytes = encode_jpeg(source, 90);
    for (int scale : {8, 5, 3}) {
      const Image8 whole = decode(bytes, scale);
      for (const PixelWindow want :
           {PixelWindow{whole.width / 5, whole.height / 7, whole.width / 2, whole.height / 2},
            PixelWindow{0, 0, 20, 7}, PixelWindow{whole.width - 33, whole.height - 9, 33, 9},
            PixelWindow{17, 1, 1, 1}}) {
        const DecodedWindow part = decode_jpeg_rgb_window(
            bytes.data(), bytes.size(), "test.jpg", [&](const JpegInfo&) { return scale; },
            [&](int, int) { return want; });
        ASSERT_EQ(part.full_width, whole.width);
        ASSERT_EQ(part.full_height, whole.height);
        ASSERT_EQ(part.top, want.top);
        ASSERT_EQ(part.image.height, want.height);
        ASSERT_LE(part.left, want.left);
        ASSERT_GE(part.left + part.image.width, want.left + want.width);
        for (int y = 0; y < want.height; ++y)
          for (int x = 0; x < want.width * 3; ++x)
            ASSERT_EQ(part.image.row(y)[(want.left - part.left) * 3 + x],
                      whole.row(want.top + y)[want.left * 3 + x])
                << "scale " << scale << " window at (" << want.left << ", " << want.top
                << ") pixel " << x / 3 << ", " << y;
      }
    }
  }
}

TEST(Jpeg, CorruptDataIsAnErrorNamingIt) {
  const std::vector<std::uint8_t> text = {'n', 'o', 't', ' ', 'a', ' ', 'j', 'p', 'e', 'g'};
  const std::string e = error_of([&] { decode_jpeg_rgb(text.data(), text.size(), "bad.JPEG"); });
  EXPECT_NE(e.find("bad.JPEG: not a readable JPEG"), std::string::npos) << e;
  auto bytes = encode_jpeg(gradient(64, 48), 90);
  bytes.resize(bytes.size() / 2);
  const std::string t = error_of([&] { decode_jpeg_rgb(bytes.data(), bytes.size(), "cut.jpg"); });
  EXPECT_NE(t.find("cut.jpg: not a readable JPEG (Premature end"), std::string::npos) << t;
  EXPECT_NE(error_of([&] { jpeg_info(text.data(), 3, "x.jpg"); }), "");
}

// torchvision's get_params accepts the first of its tries whose box fits, so (area fraction s,
// log ratio l) is uniform over the region of [scale) x [log ratio) where it fits: on a 500 x 375
// image, s * r * 187500 <= 500^2 and s / r * 187500 <= 375^2. The histograms of 20000 boxes
// against that region's marginals (integrated on a fine grid).
// The run's record in the decoder: with bgr the planes come out B, G, R (mean and std in that
// order), and rescale multiplies the pixel before the mean: (p * rescale / 255 - mean) / std.
TEST(ImageTransform, NormalizeToChwHonoursChannelOrderAndRescale) {
  const Image8 im = gradient(6, 5);
  const int side = 4;
  const std::size_t plane = side * side;
  const float mean[3] = {0.1f, 0.2f, 0.3f}, std[3] = {0.5f, 0.25f, 2.0f};
  std::vector<float> rgb(3 * plane), bgr(3 * plane);
  normalize_to_chw(im, 1, 1, side, false, mean, std, rgb.data());
  normalize_to_chw(im, 1, 1, side, false, mean, std, bgr.data(), false, 255.0f, true);
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      const std::uint8_t* p = im.row(1 + y) + 3 * (1 + x);
      const std::size_t at = static_cast<std::size_t>(y) * side + x;
      for (int c = 0; c < 3; ++c) {
        EXPECT_NEAR(rgb[c * plane + at], (p[c] / 255.0f - mean[c]) / std[c], 1e-5);
        EXPECT_NEAR(bgr[c * plane + at], (p[2 - c] - mean[c]) / std[c], 1e-3);
      }
    }
  }
}

TEST(ImageTransform, RandomResizedCropMatchesTorchvisionsDistribution) {
  const int width = 500, height = 375, bins = 10, draws = 20000;
  const ImageTransformOptions o;
  const double area = static_cast<double>(width) * height;
  const double l0 = std::log(3.0 / 4.0), l1 = std::log(4.0 / 3.0);
  std::vector<double> want_s(bins), want_l(bins), got_s(bins), got_l(bins);
  const int grid = 1000;
  double total = 0;
  for (int i = 0; i < grid; ++i)
    for (int j = 0; j < grid; ++j) {
      const double s = 0.08 + 0.92 * (i + 0.5) / grid, l = l0 + (l1 - l0) * (j + 0.5) / grid;
      const double r = std::exp(l);
      if (std::sqrt(s * area * r) > width || std::sqrt(s * area / r) > height) continue;
      want_s[static_cast<std::size_t>(i * bins / grid)] += 1;
      want_l[static_cast<std::size_t>(j * bins / grid)] += 1;
      total += 1;
    }
  for (int k = 0; k < draws; ++k) {
    const RngStream stream{7, RngPurpose::augment, 0, static_cast<std::uint32_t>(k), 0};
    const CropBox b = random_resized_crop_box(width, height, o, stream);
    ASSERT_TRUE(b.top >= 0 && b.left >= 0 && b.top + b.height <= height &&
                b.left + b.width <= width);
    const double s = b.width * b.height / area,
                 l = std::log(static_cast<double>(b.width) / b.height);
    got_s[static_cast<std::size_t>(
        std::clamp(static_cast<int>((s - 0.08) / 0.92 * bins), 0, bins - 1))] += 1;
    got_l[static_cast<std::size_t>(
        std::clamp(static_cast<int>((l - l0) / (l1 - l0) * bins), 0, bins - 1))] += 1;
  }
  for (int i = 0; i < bins; ++i) {
    const auto k = static_cast<std::size_t>(i);
    // A bin holds about 2000 draws (sd 0.002 of the total); 0.012 is 5 sd plus rounding of w, h.
    EXPECT_NEAR(got_s[k] / draws, want_s[k] / total, 0.012) << "area bin " << i;
    EXPECT_NEAR(got_l[k] / draws, want_l[k] / total, 0.015) << "log-ratio bin " << i;
  }
}

TEST(ImageTransform, CropFallbackAndValidationGeometry) {
  // No box of 8% or more fits a 1000 x 10 strip at ratio <= 4/3: the centred 13 x 10 fallback.
  const CropBox f = random_resized_crop_box(1000, 10, {}, RngStream{});
  EXPECT_EQ(f.width, 13);
  EXPECT_EQ(f.height, 10);
  EXPECT_EQ(f.left, 493);
  EXPECT_EQ(f.top, 0);
  int w = 0, h = 0;
  resize_short_side(500, 375, 256, &w, &h);
  EXPECT_EQ(w, 341);  // int(256 * 500 / 375) = int(341.33)
  EXPECT_EQ(h, 256);
  resize_short_side(300, 451, 256, &w, &h);
  EXPECT_EQ(w, 256);
  EXPECT_EQ(h, 384);  // int(384.85)
  const CropBox c = center_crop_box(341, 256, 224);
  EXPECT_EQ(c.left, 58);  // round(58.5) halves to even, as Python
  EXPECT_EQ(c.top, 16);
}

TEST(ImagePipeline, DctScalingKeepsThePicture) {
  const auto bytes = encode_jpeg(gradient(1200, 900), 92);
  ImageTransformOptions scaled, full;
  full.dct_scaling = false;
  const std::size_t n = 3 * 224 * 224;
  std::vector<float> a(n), b(n);
  for (bool train : {false, true}) {
    const RngStream stream{3, RngPurpose::augment, 1, 5, 0};
    jpeg_to_sample(bytes.data(), bytes.size(), "g.jpg", train, scaled, stream, a.data());
    jpeg_to_sample(bytes.data(), bytes.size(), "g.jpg", train, full, stream, b.data());
    double diff = 0;
    for (std::size_t i = 0; i < n; ++i) diff += std::fabs(a[i] - b[i]) * 0.225 * 255;
    EXPECT_LT(diff / static_cast<double>(n), 3.0) << (train ? "train" : "val");  // mean levels
  }
}

// A tiny ImageFolder: classes out of order, odd sizes, a gray and a CMYK image, a corrupt file,
// a file that is not a JPEG.
struct Folder {
  TempDir dir;
  Folder() {
    write_file(dir / "train/zebra/a.JPEG", encode_jpeg(solid(33, 47, {250, 250, 250}), 95));
    write_file(dir / "train/zebra/b.jpg", encode_jpeg(solid(301, 227, {250, 250, 250}), 95));
    write_file(dir / "train/apple/x.jpeg", encode_jpeg(solid(90, 60, {200, 20, 20}), 95));
    write_file(dir / "train/apple/notes.txt", {'h', 'i'});
    write_file(dir / "train/gray/g.JPEG", encode_jpeg(solid(64, 65, {100}), 95));
    write_file(dir / "train/gray/k.JPEG",  // CMYK ink (0, 0, 0, 155): gray 100
               encode_jpeg(solid(50, 40, {255, 255, 255, 255 - 155}), 95));
    write_file(dir / "train/gray/z.JPEG", {0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3});  // corrupt
    write_file(dir / "val/apple/v.JPEG", encode_jpeg(solid(260, 300, {200, 20, 20}), 95));
    write_file(dir / "val/zebra/w.JPEG", encode_jpeg(solid(300, 260, {250, 250, 250}), 95));
  }
};

// The mean of each channel of a normalised sample, back in 0..255 levels.
std::vector<double> levels(const std::vector<float>& x) {
  const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
  const std::size_t plane = x.size() / 3;
  std::vector<double> out;
  for (std::size_t c = 0; c < 3; ++c) {
    double s = 0;
    for (std::size_t i = 0; i < plane; ++i) s += x[c * plane + i];
    out.push_back((s / static_cast<double>(plane) * sd[c] + mean[c]) * 255);
  }
  return out;
}

TEST(ImageFolder, ClassesLabelsSamplesAndTheCorruptFile) {
  Folder f;
  ASSERT_TRUE(is_image_folder(f.dir.str()));
  const DataSources sources = open_dataset(DataSpec(f.dir.str()));
  const Dataset& train = *sources.train;
  EXPECT_EQ(train.kind(), "imagefolder");
  EXPECT_EQ(train.class_names(), (std::vector<std::string>{"apple", "gray", "zebra"}));
  ASSERT_EQ(train.size(), 6);  // notes.txt skipped
  EXPECT_EQ(train.sample_shape(), (Shape{3, 224, 224}));
  EXPECT_TRUE(train.transforms_itself());
  const std::vector<std::int32_t> want_labels = {0, 1, 1, 1, 2, 2};
  for (std::int64_t i = 0; i < train.size(); ++i)
    EXPECT_EQ(train.label(i), want_labels[static_cast<std::size_t>(i)]);
  ASSERT_NE(sources.val, nullptr);
  EXPECT_EQ(sources.val->size(), 2);
  EXPECT_EQ(sources.val->label(1), 2);
  // val/ is the validation split, whatever --val-fraction says.
  const DataSplits splits = make_splits(sources, 0.5, 1);
  EXPECT_EQ(splits.train->size(), 6);
  EXPECT_EQ(splits.val, sources.val);

  std::vector<float> x(3 * 224 * 224);
  const std::vector<std::vector<double>> want = {
      {200, 20, 20}, {100, 100, 100}, {100, 100, 100}, {}, {250, 250, 250}, {250, 250, 250}};
  for (std::int64_t i = 0; i < train.size(); ++i) {
    if (i == 3) continue;  // the corrupt one
    for (bool augment : {false, true}) {
      SCOPED_TRACE("sample " + std::to_string(i) + (augment ? " augmented" : ""));
      if (augment) {
        train.read_augmented(
            i, RngStream{1, RngPurpose::augment, 2, static_cast<std::uint32_t>(i), 0}, x.data());
      } else {
        train.read(i, x.data());
      }
      const auto m = levels(x);
      for (std::size_t c = 0; c < 3; ++c)
        EXPECT_NEAR(m[c], want[static_cast<std::size_t>(i)][c], 2.5);
    }
  }
  const std::string e = error_of([&] { train.read(3, x.data()); });
  EXPECT_NE(e.find(f.dir / "train/gray/z.JPEG"), std::string::npos) << e;
  EXPECT_NE(e.find("ruche convert"), std::string::npos) << e;
}

TEST(ImageFolder, AugmentationIsAFunctionOfSeedEpochAndIndex) {
  TempDir dir;
  write_file(dir / "train/a/p.JPEG", encode_jpeg(gradient(320, 240), 90));
  const DataSources s = load_image_folder(dir.str());
  std::vector<float> a(3 * 224 * 224), b(a.size()), c(a.size());
  const RngStream key{9, RngPurpose::augment, 4, 0, 0};
  s.train->read_augmented(0, key, a.data());
  s.train->read_augmented(0, key, b.data());
  EXPECT_EQ(a, b);
  RngStream other = key;
  other.epoch = 5;
  s.train->read_augmented(0, other, c.data());
  EXPECT_NE(a, c);
}

TEST(ImageFolder, LayoutErrors) {
  TempDir dir;
  write_file(dir / "train/a/p.JPEG", encode_jpeg(gradient(32, 32), 90));
  std::filesystem::create_directories(dir / "train/empty");
  EXPECT_NE(error_of([&] { load_image_folder(dir.str()); }).find("train/empty: no JPEG files"),
            std::string::npos);
  std::filesystem::remove_all(dir / "train/empty");
  write_file(dir / "val/b/q.JPEG", encode_jpeg(gradient(32, 32), 90));
  EXPECT_NE(error_of([&] { load_image_folder(dir.str()); }).find("class b has no folder in"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
