#include <fcntl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "engine/checkpoint/file_io.h"
#include "tests/checkpoint/fixture.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using namespace checkpoint_test;
using testing::error_of;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Two ranks write, rank 0 commits; a fresh net and optimizer restore the same bytes.
TEST(Checkpoint, SaveLoadRestoreRoundTrip) {
  const std::string root = temp_dir("roundtrip");
  Model saved = make_model(1);
  const std::string dir = save(saved, root, 12000, 2);

  EXPECT_TRUE(fs::is_regular_file(fs::path(dir) / "manifest.pb"));
  EXPECT_TRUE(fs::is_regular_file(fs::path(dir) / "shard-00000-of-00002.bin"));
  EXPECT_TRUE(fs::is_regular_file(fs::path(dir) / "shard-00001-of-00002.bin"));
  EXPECT_EQ(read_text(fs::path(dir) / "COMMIT"), "12000\n");
  EXPECT_EQ(read_text(fs::path(root) / "latest"), "step-00012000\n");
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  }

  const LoadedCheckpoint loaded = load_checkpoint(dir);
  EXPECT_EQ(loaded.dir, dir);
  EXPECT_EQ(loaded.meta.position.step, 12000);
  EXPECT_EQ(loaded.meta.position.epoch, 2u);
  EXPECT_EQ(loaded.meta.position.samples_in_epoch, 640);
  EXPECT_EQ(loaded.meta.position.micro_batches, 77u);
  EXPECT_EQ(loaded.meta.position.best, 0.875);
  EXPECT_EQ(loaded.meta.position.best_epoch, 1);
  EXPECT_EQ(loaded.meta.world_size, 2);
  EXPECT_EQ(loaded.meta.threads, 2);
  EXPECT_EQ(loaded.meta.net, kNet);
  EXPECT_EQ(loaded.meta.net_hash, state_hash(saved.layout));
  EXPECT_EQ(loaded.tensors.size(), saved.layout.tensors.size());
  EXPECT_EQ(loaded.state, state_bytes(saved.layout));

  Model fresh = make_model(9);
  ASSERT_NE(state_bytes(fresh.layout), state_bytes(saved.layout));
  restore(loaded, fresh.layout);
  EXPECT_EQ(state_bytes(fresh.layout), state_bytes(saved.layout));
  // The views the layers and optimizer use see it: a parameter and a slot value.
  EXPECT_EQ(fresh.net->state_tensor("conv1.weight").to_vector<float>(),
            saved.net->state_tensor("conv1.weight").to_vector<float>());
  EXPECT_EQ(fresh.optimizer->slots()[0].second->to_vector<float>(),
            saved.optimizer->slots()[0].second->to_vector<float>());
}

TEST(Checkpoint, NoBestIsNan) {
  const std::string root = temp_dir("nobest");
  Model m = make_model(1);
  CheckpointMeta meta = meta_of(m, 5, 1);
  meta.position.best = NAN;
  std::vector<std::uint8_t> bytes = state_bytes(m.layout);
  const std::string dir = (fs::path(root) / checkpoint_dir_name(5)).string();
  const ShardRecord shard = write_shard(dir, 0, 1, {0, m.layout.total_bytes()}, bytes);
  commit_checkpoint(root, 5, m.layout, meta, {shard}, 3);
  EXPECT_TRUE(std::isnan(load_checkpoint(dir).meta.position.best));
}

// Written by 3 ranks, read by any number: loading is world-independent.
TEST(Checkpoint, ReshardingThreeToAny) {
  const std::string root = temp_dir("reshard");
  Model saved = make_model(3);
  const std::string dir = save(saved, root, 40, 3);
  for (int world : {1, 2, 4}) {
    // Every rank of a world of `world` loads the whole state and restores the same bytes.
    for (int r = 0; r < world; ++r) {
      Model fresh = make_model(10 + static_cast<std::uint64_t>(r));
      restore(load_checkpoint(dir), fresh.layout);
      ASSERT_EQ(state_bytes(fresh.layout), state_bytes(saved.layout)) << world << " ranks";
    }
  }
  // And saving again at another world size gives the same state.
  Model resumed = make_model(4);
  restore(load_checkpoint(dir), resumed.layout);
  const std::string again = save(resumed, root, 41, 2);
  EXPECT_EQ(load_checkpoint(again).state, state_bytes(saved.layout));
  EXPECT_EQ(load_checkpoint(again).meta.world_size, 2);
}

TEST(Checkpoint, KeepsTheNewestAndDropsStaleUncommitted) {
  const std::string root = temp_dir("prune");
  Model m = make_model(1);
  save(m, root, 100, 2, 2);
  save(m, root, 200, 2, 2);
  // A save that crashed before its commit (older than the next commit), and one in flight (newer).
  fs::create_directories(fs::path(root) / checkpoint_dir_name(250));
  fs::create_directories(fs::path(root) / checkpoint_dir_name(900));
  std::ofstream(fs::path(root) / checkpoint_dir_name(250) / "shard-00000-of-00002.bin") << "x";
  save(m, root, 300, 2, 2);
  EXPECT_EQ(committed_checkpoints(root),
            (std::vector<std::string>{(fs::path(root) / "step-00000300").string(),
                                      (fs::path(root) / "step-00000200").string()}));
  EXPECT_FALSE(fs::exists(fs::path(root) / "step-00000100"));
  EXPECT_FALSE(fs::exists(fs::path(root) / "step-00000250"));
  EXPECT_TRUE(fs::exists(fs::path(root) / "step-00000900"));
  EXPECT_EQ(read_text(fs::path(root) / "latest"), "step-00000300\n");
  EXPECT_EQ(find_checkpoint(root), (fs::path(root) / "step-00000300").string());

  save(m, root, 400, 1, 0);  // keep <= 0: keep all
  EXPECT_EQ(committed_checkpoints(root).size(), 3u);
}

TEST(Checkpoint, FindCheckpointInRunOrRoot) {
  const std::string run = temp_dir("find");
  Model m = make_model(1);
  const std::string root = (fs::path(run) / "ckpt").string();
  save(m, root, 7, 1);
  const std::string dir = save(m, root, 8, 1);
  EXPECT_EQ(find_checkpoint(run), dir);
  EXPECT_EQ(find_checkpoint(root), dir);
  EXPECT_EQ(find_checkpoint(dir), dir);
  EXPECT_EQ(committed_checkpoints(run + "/nothing"), std::vector<std::string>{});
  const std::string empty = temp_dir("find-empty");
  EXPECT_NE(error_of([&] { find_checkpoint(empty); }).find("no committed checkpoint"),
            std::string::npos);
}

TEST(ShardWriter, WritesInTheBackgroundAndRethrows) {
  const std::string root = temp_dir("writer");
  Model m = make_model(5);
  const ByteRange range = shard_range(m.layout.total_bytes(), 1, 2);
  std::vector<std::uint8_t> bytes;
  snapshot(m.layout, range, bytes);
  const std::vector<std::uint8_t> expected = bytes;
  ShardWriter writer;
  EXPECT_FALSE(writer.busy());
  writer.start(root + "/step-00000001", 1, 2, range, std::move(bytes));
  EXPECT_TRUE(writer.busy());
  const ShardRecord record = writer.collect();
  EXPECT_FALSE(writer.busy());
  EXPECT_EQ(record.file, "shard-00001-of-00002.bin");
  EXPECT_EQ(record.range, range);
  EXPECT_EQ(record.crc32c, crc32c(expected.data(), expected.size()));
  EXPECT_EQ(read_text(fs::path(root) / "step-00000001" / record.file).size(), expected.size());

  // An unwritable place: the error comes out of collect(), naming the path.
  const std::string file = root + "/a-file";
  std::ofstream(file) << "not a directory";
  writer.start(file + "/step-00000002", 0, 1, {0, 4}, std::vector<std::uint8_t>(4));
  while (!writer.done()) std::this_thread::yield();
  const std::string error = error_of([&] { writer.collect(); });
  EXPECT_NE(error.find(file + "/step-00000002"), std::string::npos) << error;
  EXPECT_NE(error.find("not a directory"), std::string::npos) << error;
}

TEST(WriteShard, UnwritableDirectoryNamesTheFileAndLeavesNoTmp) {
  const std::string root = temp_dir("unwritable");
  const std::string dir = root + "/step-00000003";
  fs::create_directories(dir);
  // A directory where the .tmp should go: open(2) fails with EISDIR even for root.
  fs::create_directories(dir + "/shard-00000-of-00001.bin.tmp");
  const std::string error = error_of([&] {
    write_shard(dir, 0, 1, {0, 8}, std::vector<std::uint8_t>(8));
  });
  EXPECT_EQ(error, dir + "/shard-00000-of-00001.bin.tmp: cannot create: is a directory");
  fs::remove(dir + "/shard-00000-of-00001.bin.tmp");

  // A read-only directory, where permissions bind (not as root).
  if (::geteuid() != 0) {
    fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
    const std::string denied = error_of([&] {
      write_shard(dir, 0, 1, {0, 8}, std::vector<std::uint8_t>(8));
    });
    fs::permissions(dir, fs::perms::owner_all);
    EXPECT_EQ(denied, dir + "/shard-00000-of-00001.bin.tmp: cannot create: permission denied");
  }
  EXPECT_FALSE(fs::exists(dir + "/shard-00000-of-00001.bin.tmp"));
  EXPECT_FALSE(fs::exists(dir + "/shard-00000-of-00001.bin"));
}

// ENOSPC: /dev/full fails every write with it; the message is one line with the byte count.
TEST(WriteShard, FullDiskIsOneLine) {
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "no /dev/full";
  const std::vector<std::uint8_t> bytes(10000);
  const std::string error = error_of([&] {
    checkpoint_io::write_all(fd, bytes.data(), bytes.size(), "DIR/shard-00000-of-00002.bin.tmp");
  });
  ::close(fd);
  EXPECT_EQ(error, "DIR/shard-00000-of-00002.bin.tmp: no space left on device (10000 bytes)");
}

}  // namespace
}  // namespace ruche
