// Augmentation: deterministic per (seed, epoch, index), crop and flip geometry, random erasing,
// normalisation arithmetic.
#include "engine/data/transform.h"

#include <gtest/gtest.h>

#include <numeric>

namespace ruche {
namespace {

// A [c, h, w] image with distinct positive values.
std::vector<float> ramp(int c, int h, int w) {
  std::vector<float> x(static_cast<std::size_t>(c * h * w));
  std::iota(x.begin(), x.end(), 1.0f);
  return x;
}

std::vector<float> apply(const Transform& t, std::vector<float> x, std::uint32_t epoch,
                         std::uint64_t index) {
  std::vector<float> scratch(t.scratch_floats());
  t.apply(x.data(), scratch.data(), epoch, index);
  return x;
}

TEST(Transform, SameSeedEpochIndexGivesSamePixels) {
  TransformOptions o;
  o.seed = 17;
  o.augment.erase_p = 0.5f;
  const Transform t(Shape{3, 32, 32}, o);
  const auto x = ramp(3, 32, 32);
  EXPECT_EQ(apply(t, x, 3, 42), apply(t, x, 3, 42));
  // Across many indices, another epoch changes some samples (not all: a crop may repeat).
  int differ_epoch = 0, differ_index = 0;
  for (std::uint64_t i = 0; i < 50; ++i) {
    differ_epoch += apply(t, x, 3, i) != apply(t, x, 4, i);
    differ_index += apply(t, x, 3, i) != apply(t, x, 3, i + 1000);
  }
  EXPECT_GT(differ_epoch, 40);
  EXPECT_GT(differ_index, 40);
  TransformOptions other = o;
  other.seed = 18;
  EXPECT_NE(apply(t, x, 3, 42), apply(Transform(Shape{3, 32, 32}, other), x, 3, 42));
}

TEST(Transform, FlipOnlyMirrorsRows) {
  TransformOptions o;
  o.augment.crop_padding = 0;
  const Transform t(Shape{2, 3, 4}, o);
  const auto x = ramp(2, 3, 4);
  int flipped = 0, kept = 0;
  for (std::uint64_t i = 0; i < 200; ++i) {
    const auto y = apply(t, x, 0, i);
    if (y == x) {
      ++kept;
      continue;
    }
    ++flipped;
    for (int c = 0; c < 2; ++c)
      for (int r = 0; r < 3; ++r)
        for (int col = 0; col < 4; ++col)
          ASSERT_EQ(y[static_cast<std::size_t>((c * 3 + r) * 4 + col)],
                    x[static_cast<std::size_t>((c * 3 + r) * 4 + (3 - col))]);
  }
  EXPECT_GT(flipped, 70);  // about half
  EXPECT_GT(kept, 70);
}

TEST(Transform, CropIsAShiftWithZeroFill) {
  TransformOptions o;
  o.augment.hflip = false;
  o.augment.crop_padding = 2;
  const Transform t(Shape{1, 6, 6}, o);
  const auto x = ramp(1, 6, 6);
  int shifted = 0;
  for (std::uint64_t i = 0; i < 100; ++i) {
    const auto y = apply(t, x, 1, i);
    // Find the shift from a surviving pixel, then check every pixel against it.
    bool found = false;
    for (int dy = -2; dy <= 2 && !found; ++dy) {
      for (int dx = -2; dx <= 2 && !found; ++dx) {
        bool match = true;
        for (int r = 0; r < 6 && match; ++r) {
          for (int c = 0; c < 6 && match; ++c) {
            const int sr = r + dy, sc = c + dx;
            const float want = (sr >= 0 && sr < 6 && sc >= 0 && sc < 6)
                                   ? x[static_cast<std::size_t>(sr) * 6 + sc]
                                   : 0.0f;
            match = y[static_cast<std::size_t>(r) * 6 + c] == want;
          }
        }
        if (match) {
          found = true;
          shifted += dy != 0 || dx != 0;
        }
      }
    }
    ASSERT_TRUE(found) << "sample " << i << " is not a shifted copy";
  }
  EXPECT_GT(shifted, 70);  // 24 of 25 shifts move the image
}

TEST(Transform, DisabledAugmentOnlyNormalises) {
  TransformOptions o;
  o.augment.enabled = false;
  o.augment.erase_p = 1.0f;
  o.norm = {{0.5f, 1.0f}, {0.25f, 2.0f}};
  const Transform t(Shape{2, 1, 2}, o);
  EXPECT_FALSE(t.augments());
  EXPECT_EQ(apply(t, {0.0f, 1.0f, 3.0f, 5.0f}, 0, 0),
            (std::vector<float>{-2.0f, 2.0f, 1.0f, 2.0f}));
}

TEST(Transform, RandomErasingZeroesARectangle) {
  TransformOptions o;
  o.augment.crop_padding = 0;
  o.augment.hflip = false;
  o.augment.erase_p = 1.0f;
  const Transform t(Shape{3, 32, 32}, o);
  const auto x = ramp(3, 32, 32);
  for (std::uint64_t i = 0; i < 20; ++i) {
    const auto y = apply(t, x, 0, i);
    // The zeros form one rectangle, the same in every channel, of 2% .. 33% of the area.
    int top = 32, bottom = -1, left = 32, right = -1, zeros = 0;
    for (int r = 0; r < 32; ++r)
      for (int c = 0; c < 32; ++c)
        if (y[static_cast<std::size_t>(r) * 32 + c] == 0.0f) {
          ++zeros;
          top = std::min(top, r), bottom = std::max(bottom, r);
          left = std::min(left, c), right = std::max(right, c);
        }
    if (zeros == 0) continue;  // all ten attempts missed: allowed, rare
    EXPECT_EQ(zeros, (bottom - top + 1) * (right - left + 1));
    EXPECT_GE(zeros, 0.02 * 1024 - 16);
    EXPECT_LE(zeros, 0.33 * 1024 + 40);
    for (int c = 1; c < 3; ++c)
      for (int p = 0; p < 1024; ++p)
        ASSERT_EQ(y[static_cast<std::size_t>(c) * 1024 + p] == 0.0f,
                  y[static_cast<std::size_t>(p)] == 0.0f);
  }
}

TEST(Transform, VectorsAreOnlyNormalised) {
  TransformOptions o;
  o.norm = {{1.0f}, {2.0f}};
  const Transform t(Shape{3}, o);
  EXPECT_EQ(apply(t, {1.0f, 3.0f, 5.0f}, 0, 9), (std::vector<float>{0.0f, 1.0f, 2.0f}));
}

}  // namespace
}  // namespace ruche
