// The optimizer's per-parameter ranges built from a Net's ParamEntry list.
#include "engine/optim/param_table.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/support/errors.h"

namespace ruche {
namespace {

ParamEntry entry(const std::string& name, ParamRole role, std::int64_t offset, std::int64_t count,
                 bool frozen = false) {
  ParamEntry e;
  e.name = name;
  e.shape = Shape{count};
  e.role = role;
  e.offset = offset;
  e.count = count;
  e.frozen = frozen;
  return e;
}

std::vector<ParamEntry> net_table() {
  std::vector<ParamEntry> t = {entry("fc.weight", ParamRole::weight, 0, 20),
                               entry("fc.bias", ParamRole::bias, 20, 4),
                               entry("bn.weight", ParamRole::norm_weight, 24, 4),
                               entry("bn.bias", ParamRole::norm_bias, 28, 4),
                               entry("conv.weight", ParamRole::weight, 32, 6, true)};
  t[0].lr_mult = 0.5f;
  t[0].decay_mult = 2.0f;
  t[1].decay_mult = 0.25f;
  t[4].lr_mult = 0;
  return t;
}

TEST(ParamTable, RangesCarryMultipliersAndSkipFrozen) {
  const auto ranges = build_param_ranges(net_table(), 32, false);
  ASSERT_EQ(ranges.size(), 4u);
  EXPECT_EQ(ranges[0].begin, 0);
  EXPECT_EQ(ranges[0].end, 20);
  EXPECT_EQ(ranges[0].lr_mult, 0.5f);
  EXPECT_EQ(ranges[0].decay_mult, 2.0f);
  EXPECT_TRUE(ranges[0].adapt);
  EXPECT_EQ(ranges[1].decay_mult, 0.25f);
  EXPECT_FALSE(ranges[1].adapt);
  EXPECT_EQ(ranges[2].decay_mult, 1.0f);
  EXPECT_FALSE(ranges[2].adapt);
  EXPECT_EQ(ranges[3].begin, 28);
  EXPECT_EQ(ranges[3].end, 32);
  EXPECT_EQ(ranges[3].entry, 3);
}

TEST(ParamTable, NoDecayOnBiasesAndNorms) {
  const auto ranges = build_param_ranges(net_table(), 32, true);
  ASSERT_EQ(ranges.size(), 4u);
  EXPECT_EQ(ranges[0].decay_mult, 2.0f);
  EXPECT_EQ(ranges[1].decay_mult, 0.0f);
  EXPECT_EQ(ranges[2].decay_mult, 0.0f);
  EXPECT_EQ(ranges[3].decay_mult, 0.0f);
  EXPECT_EQ(ranges[1].lr_mult, 1.0f);
}

TEST(ParamTable, Errors) {
  EXPECT_NE(testing::error_of([] {
              build_param_ranges(net_table(), 30, false);
            }).find("'bn.bias' at [28, 32) lies outside the 30 trainable elements"),
            std::string::npos);
  auto overlapping = net_table();
  overlapping[1].offset = 18;
  EXPECT_NE(testing::error_of([&] {
              build_param_ranges(overlapping, 32, false);
            }).find("'fc.weight' and 'fc.bias' overlap"),
            std::string::npos);
}

}  // namespace
}  // namespace ruche
