// Every way a checkpoint can be damaged is its own error, naming the file.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/checkpoint/fixture.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using namespace checkpoint_test;
using testing::error_of;

class Corruption : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    model_ = make_model(1);
    dir_ = save(model_, root_, 500, 2);
    shard_ = (fs::path(dir_) / "shard-00001-of-00002.bin").string();
  }
  std::string load_error() {
    return error_of([&] { load_checkpoint(dir_); });
  }

  std::string root_, dir_, shard_;
  Model model_;
};

TEST_F(Corruption, IntactLoads) { EXPECT_EQ(load_error(), ""); }

TEST_F(Corruption, TruncatedShard) {
  const auto size = static_cast<std::int64_t>(fs::file_size(shard_));
  fs::resize_file(shard_, static_cast<std::uintmax_t>(size - 100));
  EXPECT_EQ(load_error(), shard_ + ": truncated: " + std::to_string(size - 100) + " of " +
                              std::to_string(size) + " bytes");
}

TEST_F(Corruption, FlippedByte) {
  std::fstream f(shard_, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(17);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  f.seekp(17);
  f.write(&c, 1);
  f.close();
  const std::string error = load_error();
  EXPECT_EQ(error.rfind(shard_ + ": crc32c 0x", 0), 0u) << error;
  EXPECT_NE(error.find(" does not match the manifest's 0x"), std::string::npos) << error;
}

TEST_F(Corruption, DeletedShard) {
  fs::remove(shard_);
  EXPECT_EQ(load_error(), shard_ + ": missing");
}

TEST_F(Corruption, DeletedCommit) {
  fs::remove(fs::path(dir_) / "COMMIT");
  EXPECT_EQ(load_error(), dir_ + "/COMMIT: missing: the checkpoint is not committed");
  EXPECT_TRUE(committed_checkpoints(root_).empty());
}

TEST_F(Corruption, DeletedManifest) {
  fs::remove(fs::path(dir_) / "manifest.pb");
  EXPECT_EQ(load_error(), dir_ + "/manifest.pb: missing");
}

TEST_F(Corruption, GarbledManifest) {
  std::ofstream(fs::path(dir_) / "manifest.pb", std::ios::trunc) << "\xff\xff\xff garbage";
  const std::string error = load_error();
  EXPECT_EQ(error.rfind(dir_ + "/manifest.pb: cannot parse", 0), 0u) << error;
}

TEST_F(Corruption, NoSuchDirectory) {
  EXPECT_EQ(error_of([&] { load_checkpoint(root_ + "/step-00000999"); }),
            root_ + "/step-00000999: no such checkpoint directory");
}

TEST_F(Corruption, ManifestOfAnotherNetIntoRestore) {
  Model wide = make_model(1, wider_net());
  const std::string error = error_of([&] { restore(load_checkpoint(dir_), wide.layout); });
  // The flat buffer is in reverse layer order: fc.weight (whose width follows conv2) comes first.
  EXPECT_EQ(error,
            "a checkpoint of another net: tensor 0 is fc.weight [5,24] here and "
            "fc.weight [5,12] in " +
                dir_ + "/manifest.pb")
      << error;
}

TEST_F(Corruption, AnotherOptimizerIntoRestore) {
  // SGD without momentum has no slot: the checkpoint has more tensors than this state.
  Model m = make_model(1);
  proto::SolverParameter solver;
  parse_prototxt("type: 'sgd' momentum: 0", "solver", solver);
  auto plain = make_optimizer(solver, m.net->param_table(), m.net->num_trainable());
  const StateLayout layout = training_state_layout(*m.net, *plain);
  const std::string error = error_of([&] { restore(load_checkpoint(dir_), layout); });
  EXPECT_NE(error.find("a checkpoint of another net: tensor "), std::string::npos) << error;
  EXPECT_NE(error.find("here and momentum_buffer."), std::string::npos) << error;
}

TEST_F(Corruption, DescribeNamesEveryBadShard) {
  fs::resize_file(shard_, 10);
  const std::string text = describe_checkpoint(dir_);
  EXPECT_NE(text.find("step 500, epoch 2"), std::string::npos) << text;
  EXPECT_NE(text.find("(committed)"), std::string::npos) << text;
  EXPECT_NE(text.find("shard-00000-of-00002.bin"), std::string::npos) << text;
  EXPECT_NE(text.find("ok"), std::string::npos) << text;
  EXPECT_NE(text.find("truncated: 10 of"), std::string::npos) << text;
  EXPECT_NE(text.find("conv2.weight "), std::string::npos) << text;
  EXPECT_NE(text.find("[3,4,3,3] f32  432 bytes at 240"), std::string::npos) << text;
  EXPECT_NE(text.find("not usable for resume: 1 shard bad"), std::string::npos) << text;
}

}  // namespace
}  // namespace ruche
