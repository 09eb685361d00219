// The run's input record (engine/data/preprocess.h): --normalize, the record's JSON, and what a
// record makes the loader do (rescale, BGR, mean image, mean and std), checked value by value.
#include "engine/data/preprocess.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/tensor/npy.h"
#include "engine/tensor/tensor.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Preprocess, NormalizeFlag) {
  EXPECT_EQ(parse_normalize_flag("auto").mode, NormalizeChoice::Mode::automatic);
  EXPECT_EQ(parse_normalize_flag("none").mode, NormalizeChoice::Mode::none);
  const NormalizeChoice c = parse_normalize_flag("0.5,0.25,0/1,2,0.5");
  EXPECT_EQ(c.mode, NormalizeChoice::Mode::given);
  EXPECT_EQ(c.mean, (std::vector<float>{0.5f, 0.25f, 0.0f}));
  EXPECT_EQ(c.std, (std::vector<float>{1.0f, 2.0f, 0.5f}));
  EXPECT_NE(error_of([] { parse_normalize_flag("mean"); }).find("expected auto, none"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_normalize_flag("0.5,x/1,1"); }).find("'x' is not a number"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_normalize_flag("0.5,0.5/1"); }).find("2 means but 1"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_normalize_flag("0.5/0"); }).find("std 0"), std::string::npos);
}

InputFacts rgb_facts() { return {"cifar10", true, Shape{3, 2, 2}, {"a", "b"}}; }

TEST(Preprocess, RecordRoundTripsThroughJson) {
  const proto::Preprocess r =
      make_preprocess(rgb_facts(), Normalization({0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.5f}));
  EXPECT_EQ(r.input(), "pixels");
  EXPECT_FLOAT_EQ(r.scale(), 1.0f / 255.0f);
  EXPECT_EQ(r.channel_order(), "RGB");
  const std::string json = preprocess_json(r);
  EXPECT_NE(json.find("\"channel_order\": \"RGB\""), std::string::npos) << json;
  const proto::Preprocess back = parse_preprocess(json, "test");
  EXPECT_EQ(back.SerializeAsString(), r.SerializeAsString());
  EXPECT_NE(error_of([] {
              parse_preprocess("{\"scale\": \"x\"}", "R/preprocess.json");
            }).find("R/preprocess.json: not a preprocessing record"),
            std::string::npos);
  EXPECT_EQ(describe_preprocess(r), "pixels / 255, mean 0.5,0.4,0.3 std 0.2,0.25,0.5, RGB 3x2x2");
}

// A sample of 3 channels x 4 pixels as read() gives it (pixels / 255), through a record with scale
// 1 (Caffe's 0-255 inputs), BGR, a mean image and per-channel mean/std.
TEST(Preprocess, LoaderAppliesEveryFieldInOrder) {
  const fs::path dir = fs::temp_directory_path() / "ruche_preprocess_test";
  fs::create_directories(dir);
  std::vector<float> mean_image(12);
  for (int i = 0; i < 12; ++i) mean_image[static_cast<std::size_t>(i)] = static_cast<float>(i);
  save_npy((dir / "mean.npy").string(), Tensor::from_vector(mean_image, {3, 2, 2}));
  proto::Preprocess r;
  r.set_input("pixels");
  r.set_scale(1.0f);
  r.set_channel_order("BGR");
  r.set_mean_image("mean.npy");
  for (float m : {1.0f, 2.0f, 3.0f}) r.add_mean(m);
  for (float s : {2.0f, 4.0f, 8.0f}) r.add_std(s);
  for (std::int32_t d : {3, 2, 2}) r.add_sample_shape(d);
  const Normalization n = normalization_of(r, dir.string(), rgb_facts(), "R");
  EXPECT_FLOAT_EQ(n.rescale, 255.0f);
  EXPECT_TRUE(n.reverse_channels);

  std::vector<float> raw(12);  // channel c, pixel p: 10 c + p
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 4; ++p) raw[4 * static_cast<std::size_t>(c) + p] = 10.0f * c + p;
  std::vector<float> x = raw;
  for (float& v : x) v /= 255.0f;  // what read() gives for pixels
  TransformOptions o;
  o.norm = n;
  o.augment.enabled = false;
  Transform(Shape{3, 2, 2}, o).normalize(x.data());
  for (int c = 0; c < 3; ++c) {
    for (int p = 0; p < 4; ++p) {
      const float bgr = raw[4 * static_cast<std::size_t>(2 - c) + p];
      const float expected =
          (bgr - mean_image[4 * static_cast<std::size_t>(c) + p] - r.mean(c)) / r.std(c);
      EXPECT_NEAR(x[4 * static_cast<std::size_t>(c) + p], expected, 1e-4) << c << " " << p;
    }
  }
  fs::remove_all(dir);
}

TEST(Preprocess, RecordThatDoesNotFitTheDataIsNamed) {
  proto::Preprocess r = make_preprocess(rgb_facts(), Normalization());
  InputFacts other = rgb_facts();
  other.sample_shape = Shape{3, 4, 4};
  EXPECT_NE(error_of([&] { normalization_of(r, ".", other, "N/preprocess.json"); })
                .find("N/preprocess.json: the record is for samples of shape [3, 2, 2] but the "
                      "data (cifar10) has [3, 4, 4]"),
            std::string::npos);
  InputFacts values = rgb_facts();
  values.pixels = false;
  EXPECT_NE(error_of([&] {
              normalization_of(r, ".", values, "R");
            }).find("the record takes pixels but the data (cifar10) gives values"),
            std::string::npos);
  r.add_mean(0.5f);
  EXPECT_NE(
      error_of([&] { normalization_of(r, ".", rgb_facts(), "R"); }).find("1 means for 3 channels"),
      std::string::npos);
  r.clear_mean();
  r.set_mean_image("missing.npy");
  EXPECT_NE(error_of([&] { normalization_of(r, "/nonexistent", rgb_facts(), "R"); }), "");
}

TEST(Preprocess, GivenStatisticsMustMatchTheChannels) {
  const NormalizeChoice c = parse_normalize_flag("0.5/0.25");
  EXPECT_NE(error_of([&] {
              choose_normalization(c, rgb_facts(), nullptr);
            }).find("1 means for samples of shape [3, 2, 2] (3 channels)"),
            std::string::npos);
  const Normalization n = choose_normalization(parse_normalize_flag("none"), rgb_facts(), nullptr);
  EXPECT_TRUE(n.empty());
}

}  // namespace
}  // namespace ruche
