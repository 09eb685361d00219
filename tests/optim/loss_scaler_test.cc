// Dynamic loss scaling against torch.cuda.amp.GradScaler's rule (_amp_update_scale_): defaults,
// backoff and skip on a non-finite step, growth after growth_interval finite steps in a row, no
// growth to inf, restore, option errors.
#include "engine/optim/loss_scaler.h"

#include <gtest/gtest.h>

#include <limits>

#include "tests/support/errors.h"

namespace ruche {
namespace {

TEST(LossScaler, DefaultsAreGradScalers) {
  const LossScaler s;
  EXPECT_EQ(s.scale(), 65536.0f);
  EXPECT_EQ(s.inv_scale(), 1.0f / 65536.0f);
  EXPECT_EQ(s.options().growth_factor, 2.0f);
  EXPECT_EQ(s.options().backoff_factor, 0.5f);
  EXPECT_EQ(s.options().growth_interval, 2000);
  EXPECT_EQ(s.skipped_steps(), 0);
  EXPECT_EQ(s.growth_tracker(), 0);
}

TEST(LossScaler, NonFiniteStepIsSkippedAndBacksOff) {
  LossScaler s;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.growth_tracker(), 5);
  EXPECT_FALSE(s.update(false));
  EXPECT_EQ(s.scale(), 32768.0f);
  EXPECT_EQ(s.growth_tracker(), 0);
  EXPECT_EQ(s.skipped_steps(), 1);
  EXPECT_FALSE(s.update(false));
  EXPECT_EQ(s.scale(), 16384.0f);
  EXPECT_EQ(s.skipped_steps(), 2);
}

TEST(LossScaler, GrowsAfterTheIntervalOfFiniteStepsInARow) {
  LossScaler s;
  for (int i = 0; i < 1999; ++i) ASSERT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 65536.0f);
  EXPECT_EQ(s.growth_tracker(), 1999);
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 131072.0f);
  EXPECT_EQ(s.growth_tracker(), 0);
  // A skipped step restarts the count.
  for (int i = 0; i < 1000; ++i) s.update(true);
  s.update(false);
  EXPECT_EQ(s.scale(), 65536.0f);
  for (int i = 0; i < 1999; ++i) s.update(true);
  EXPECT_EQ(s.scale(), 65536.0f);
  s.update(true);
  EXPECT_EQ(s.scale(), 131072.0f);
  EXPECT_EQ(s.skipped_steps(), 1);
}

// torch's sequence for a small interval, step by step: (found_inf, scale after, tracker after).
TEST(LossScaler, FollowsGradScalerStepByStep) {
  LossScalerOptions o;
  o.init_scale = 8.0f;
  o.growth_factor = 4.0f;
  o.backoff_factor = 0.25f;
  o.growth_interval = 3;
  LossScaler s(o);
  struct Expect {
    bool finite;
    float scale;
    int tracker;
  };
  const Expect sequence[] = {{true, 8, 1}, {true, 8, 2},  {true, 32, 0}, {false, 8, 0},
                             {true, 8, 1}, {false, 2, 0}, {true, 2, 1},  {true, 2, 2},
                             {true, 8, 0}, {true, 8, 1}};
  int skipped = 0;
  for (const Expect& e : sequence) {
    EXPECT_EQ(s.update(e.finite), e.finite);
    skipped += e.finite ? 0 : 1;
    EXPECT_EQ(s.scale(), e.scale);
    EXPECT_EQ(s.growth_tracker(), e.tracker);
    EXPECT_EQ(s.skipped_steps(), skipped);
  }
}

TEST(LossScaler, NeverGrowsToInfinity) {
  LossScalerOptions o;
  o.init_scale = std::numeric_limits<float>::max() / 1.5f;
  o.growth_interval = 1;
  LossScaler s(o);
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), o.init_scale);
  EXPECT_EQ(s.growth_tracker(), 0);
}

TEST(LossScaler, RestoresACheckpointsState) {
  LossScaler s;
  s.restore(1024.0f, 1998, 7);
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_EQ(s.skipped_steps(), 7);
  s.update(true);
  s.update(true);
  EXPECT_EQ(s.scale(), 2048.0f);
  EXPECT_NE(testing::error_of([&] { s.restore(0.0f, 0, 0); }).find("restored scale"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { s.restore(1.0f, 2000, 0); }).find("growth tracker 2000"),
            std::string::npos);
}

TEST(LossScaler, ClearErrors) {
  const auto error_with = [](auto change) {
    LossScalerOptions o;
    change(o);
    return testing::error_of([&] { LossScaler s(o); });
  };
  EXPECT_EQ(error_with([](LossScalerOptions& o) { o.init_scale = 0; }),
            "loss scaler: init_scale must be finite and > 0, got 0");
  EXPECT_EQ(error_with([](LossScalerOptions& o) { o.growth_factor = 1; }),
            "loss scaler: growth_factor must be > 1, got 1");
  EXPECT_EQ(error_with([](LossScalerOptions& o) { o.backoff_factor = 1; }),
            "loss scaler: backoff_factor must be in (0, 1), got 1");
  EXPECT_EQ(error_with([](LossScalerOptions& o) { o.growth_interval = 0; }),
            "loss scaler: growth_interval must be >= 1, got 0");
}

}  // namespace
}  // namespace ruche
