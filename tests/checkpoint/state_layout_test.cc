#include <gtest/gtest.h>

#include "tests/checkpoint/fixture.h"

namespace ruche {
namespace {

using namespace checkpoint_test;

TEST(ShardRange, TilesTheStateForManyWorlds) {
  for (const std::int64_t total : {0ll, 1ll, 3ll, 4ll, 7ll, 1000ll, 4096ll, 1000003ll}) {
    for (int world = 1; world <= 17; ++world) {
      std::int64_t at = 0;
      for (int r = 0; r < world; ++r) {
        const ByteRange range = shard_range(total, r, world);
        ASSERT_EQ(range.begin, at) << total << " bytes, rank " << r << " of " << world;
        ASSERT_GE(range.size(), total / world);
        ASSERT_LE(range.size(), total / world + 1);
        at = range.end;
      }
      ASSERT_EQ(at, total) << total << " bytes among " << world;
    }
  }
  // No overflow on huge states.
  const std::int64_t huge = 1ll << 60;
  EXPECT_EQ(shard_range(huge, 2, 3).end, huge);
}

TEST(Names, StepDirectoryAndShardFile) {
  EXPECT_EQ(checkpoint_dir_name(12000), "step-00012000");
  EXPECT_EQ(shard_file_name(1, 4), "shard-00001-of-00004.bin");
}

TEST(StateLayout, ParamsThenSlotsOfTrainableThenBuffers) {
  Model m = make_model(1);
  const StateLayout& l = m.layout;
  ASSERT_EQ(l.regions.size(), 3u);
  EXPECT_EQ(l.regions[0].name, "params");
  EXPECT_EQ(l.regions[1].name, "momentum_buffer");
  EXPECT_EQ(l.regions[2].name, "buffers");
  EXPECT_EQ(l.total_bytes(),
            4 * (m.net->params().numel() + m.net->num_trainable() + m.net->buffers().numel()));
  // Tensors lie end to end and name every byte.
  std::int64_t at = 0;
  for (const auto& t : l.tensors) {
    EXPECT_EQ(t.offset, at) << t.name;
    EXPECT_EQ(t.bytes, t.shape.numel() * 4) << t.name;
    at += t.bytes;
  }
  EXPECT_EQ(at, l.total_bytes());
  EXPECT_EQ(l.tensors.front().name, "fc.weight");  // the flat buffer's order
  auto has = [&](const std::string& name) {
    for (const auto& t : l.tensors) {
      if (t.name == name) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("fc.bias"));                   // frozen: a parameter all the same
  EXPECT_FALSE(has("momentum_buffer.fc.bias"));  // but no slot
  EXPECT_TRUE(has("momentum_buffer.conv1.weight"));
  EXPECT_TRUE(has("bn1.running_var"));
  EXPECT_TRUE(has("bn1.num_batches_tracked"));
}

TEST(StateLayout, NoBuffersNoSlotsNoRegion) {
  const std::string mlp = R"(
layer { name: "input" type: "Input" top: "data" top: "label" }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "logits" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
)";
  NetOptions options;
  options.sample_shape = {3};
  options.num_classes = 2;
  auto net = Net::build(parse_net(mlp, "mlp", nullptr), options);
  proto::SolverParameter solver;
  parse_prototxt("type: 'sgd' momentum: 0", "solver", solver);
  auto opt = make_optimizer(solver, net->param_table(), net->num_trainable());
  const StateLayout l = training_state_layout(*net, *opt);
  ASSERT_EQ(l.regions.size(), 1u);
  EXPECT_EQ(l.total_bytes(), 4 * 8);
}

TEST(StateLayout, SnapshotOfAnyRangeIsTheStateBytes) {
  Model m = make_model(2);
  // The reference: the regions' bytes one after the other.
  std::vector<std::uint8_t> whole;
  for (const auto& r : m.layout.regions) {
    const auto* p = static_cast<const std::uint8_t*>(r.tensor.raw_data());
    whole.insert(whole.end(), p, p + r.tensor.nbytes());
  }
  ASSERT_EQ(static_cast<std::int64_t>(whole.size()), m.layout.total_bytes());
  const std::int64_t total = m.layout.total_bytes();
  for (const int world : {1, 2, 3, 7}) {
    for (int r = 0; r < world; ++r) {
      const ByteRange range = shard_range(total, r, world);  // crosses regions, odd byte edges
      std::vector<std::uint8_t> bytes;
      snapshot(m.layout, range, bytes);
      ASSERT_EQ(static_cast<std::int64_t>(bytes.size()), range.size());
      EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), whole.begin() + range.begin))
          << "rank " << r << " of " << world;
    }
  }
}

TEST(StateHash, NamesAndShapesNotValues) {
  Model a = make_model(1), b = make_model(2), wide = make_model(1, wider_net());
  EXPECT_EQ(state_hash(a.layout), state_hash(b.layout));
  EXPECT_NE(state_hash(a.layout), state_hash(wide.layout));
}

TEST(ResumeDifferences, SameWorldAndThreadsIsBitIdentical) {
  CheckpointMeta meta;
  meta.world_size = 2;
  meta.threads = 4;
  EXPECT_EQ(resume_differences(meta, 2, 4), "");
  EXPECT_EQ(resume_differences(meta, 3, 4),
            "the checkpoint was written by 2 ranks x 4 threads, this run has 3 ranks x 4 threads: "
            "the resume continues at the same sample and step, but not bit-identically (the "
            "world size changes the order of floating-point sums)");
  EXPECT_NE(resume_differences(meta, 2, 1).find("this run has 2 ranks x 1 thread: "),
            std::string::npos);
  meta.threads = 0;
  EXPECT_NE(resume_differences(meta, 2, 4), "");
}

}  // namespace
}  // namespace ruche
