#include "engine/rng/philox.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/rng/fill.h"

namespace ruche {
namespace {

TEST(Philox, KnownAnswer) {
  // Random123's known-answer vector for philox4x32-10 with all-ones counter and key... use the
  // zero vector: counter 0, key 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  const Philox4 r = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
}

TEST(Philox, StreamsDifferAndRepeat) {
  RngStream a{7, RngPurpose::dropout, 0, 3, 1};
  RngStream b = a;
  b.layer = 2;
  EXPECT_EQ(rng_bits(a, 5), rng_bits(a, 5));
  EXPECT_NE(rng_bits(a, 5), rng_bits(b, 5));
  RngStream c = a;
  c.index = 4;
  EXPECT_NE(rng_bits(a, 5), rng_bits(c, 5));
}

TEST(Philox, UniformAndNormalMoments) {
  Tensor u = Tensor::empty({100000});
  Tensor n = Tensor::empty({100000});
  fill_uniform(u, 0, 1, RngStream{1, RngPurpose::test, 0, 0, 0});
  fill_normal(n, 0, 1, RngStream{1, RngPurpose::test, 0, 0, 1});
  double su = 0, sn = 0, sn2 = 0;
  for (float x : u.to_vector()) {
    ASSERT_GE(x, 0.0f);
    ASSERT_LT(x, 1.0f);
    su += x;
  }
  for (float x : n.to_vector()) {
    ASSERT_TRUE(std::isfinite(x));
    sn += x;
    sn2 += static_cast<double>(x) * x;
  }
  EXPECT_NEAR(su / 1e5, 0.5, 0.01);
  EXPECT_NEAR(sn / 1e5, 0.0, 0.02);
  EXPECT_NEAR(sn2 / 1e5, 1.0, 0.02);
}

}  // namespace
}  // namespace ruche
