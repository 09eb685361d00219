// --checkpoint-every-steps auto[:P%] (engine/train/checkpointing.h): the cadence is a pure function
// of the measured step time, save time and bound; the flag's text; RUCHE_FAULT's N+ form.
#include <gtest/gtest.h>

#include "engine/error.h"
#include "engine/train/checkpointing.h"
#include "engine/train/fault.h"

namespace ruche {
namespace {

TEST(Cadence, TheMostFrequentCadenceWithinTheBound) {
  // A 0.1 s step and a 0.05 s save at 2%: 0.05 <= 0.02 * N * 0.1 first at N = 25.
  EXPECT_EQ(choose_cadence(0.1, 0.05, 2), 25);
  EXPECT_LE(0.05 / (25 * 0.1), 0.02);
  EXPECT_GT(0.05 / (24 * 0.1), 0.02);
  // A looser bound saves more often; a slower save less often; a slower step more often.
  EXPECT_EQ(choose_cadence(0.1, 0.05, 5), 10);
  EXPECT_EQ(choose_cadence(0.1, 0.5, 2), 250);
  EXPECT_EQ(choose_cadence(1.0, 0.05, 2), 3);
  // The bound met exactly is the cadence (no off-by-one from rounding).
  EXPECT_EQ(choose_cadence(0.5, 0.01, 2), 1);
  EXPECT_EQ(choose_cadence(0.25, 0.01, 2), 2);
}

TEST(Cadence, EdgesAreClamped) {
  EXPECT_EQ(choose_cadence(0.1, 0, 2), 1);  // a free save: every step
  EXPECT_EQ(choose_cadence(10, 1e-6, 2), 1);
  EXPECT_EQ(choose_cadence(0, 0.05, 2), kMaxAutoCadence);  // no measured step time
  EXPECT_EQ(choose_cadence(1e-9, 100, 2), kMaxAutoCadence);
  EXPECT_THROW(choose_cadence(0.1, 0.05, 0), Error);
}

TEST(Cadence, ParsesTheFlag) {
  CheckpointOptions o;
  parse_checkpoint_every_steps("auto", o);
  EXPECT_EQ(o.auto_percent, 2);
  EXPECT_EQ(o.every_steps, 0);
  parse_checkpoint_every_steps("auto:5%", o);
  EXPECT_EQ(o.auto_percent, 5);
  parse_checkpoint_every_steps("auto:0.5", o);
  EXPECT_EQ(o.auto_percent, 0.5);
  parse_checkpoint_every_steps("12", o);
  EXPECT_EQ(o.every_steps, 12);
  EXPECT_EQ(o.auto_percent, 0);
  parse_checkpoint_every_steps("0", o);
  EXPECT_EQ(o.every_steps, 0);
  for (const char* bad :
       {"", "-3", "1.5", "auto:", "auto:0%", "auto:100%", "auto5", "auto:x%", "often"}) {
    EXPECT_THROW(parse_checkpoint_every_steps(bad, o), Error) << bad;
  }
}

TEST(Fault, FromStepNOn) {
  const Fault f = Fault::parse("crash_in_writer:40+@1");
  EXPECT_TRUE(f.or_later);
  EXPECT_EQ(f.step, 40);
  EXPECT_EQ(f.rank, 1);
  EXPECT_FALSE(Fault::parse("crash_in_writer:40").or_later);
  EXPECT_THROW(Fault::parse("crash_in_writer:+"), Error);
  EXPECT_THROW(Fault::parse("crash_in_writer:+@1"), Error);
  // Before its step, or on another rank, it does nothing (firing would kill this test).
  f.maybe_fail(Fault::Point::in_writer, 39, 1);
  f.maybe_fail(Fault::Point::in_writer, 41, 0);
  f.maybe_fail(Fault::Point::step_start, 41, 1);
}

}  // namespace
}  // namespace ruche
