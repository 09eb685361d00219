// Heartbeats and abort notes (comm/heartbeat.h) in one process: each rank of the MPI run works in
// a directory of its own, so nothing here talks to the other ranks.
#include "comm/heartbeat.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "comm/watchdog.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void sleep_seconds(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

struct TempDir {
  fs::path path =
      fs::temp_directory_path() / ("ruche-heartbeat-test-" + std::to_string(getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() { fs::remove_all(path); }
  ~TempDir() { fs::remove_all(path); }
};

TEST(Heartbeat, WrittenAtStartThenAtMostOncePerInterval) {
  TempDir dir;
  Heartbeat beat(dir.path.string(), 1, 2, /*interval_seconds=*/0.3);
  const fs::path file = dir.path / "heartbeat-1";
  const std::string first = read(file);
  EXPECT_NE(first.find("rank 1\n"), std::string::npos) << first;
  EXPECT_NE(first.find("collectives 0\n"), std::string::npos) << first;
  EXPECT_NE(first.find("last (none yet)\n"), std::string::npos) << first;
  EXPECT_NE(first.find("pid " + std::to_string(getpid()) + "\n"), std::string::npos) << first;

  beat.completed("all_reduce sum f32[8] (the step's votes, collective #1)");
  beat.completed("all_reduce avg f32[100] (gradient bucket 1 of 1, collective #2)");
  EXPECT_EQ(read(file), first) << "rewritten at once: the writer waits for its interval";
  sleep_seconds(0.5);
  const std::string second = read(file);
  EXPECT_NE(second.find("collectives 2\n"), std::string::npos) << second;
  EXPECT_NE(second.find("last all_reduce avg f32[100] (gradient bucket 1 of 1, collective #2)\n"),
            std::string::npos)
      << second;
  EXPECT_FALSE(fs::exists(dir.path / "heartbeat-1.tmp"));
  const auto written = fs::last_write_time(file);
  sleep_seconds(0.5);
  EXPECT_EQ(fs::last_write_time(file), written) << "nothing completed: not rewritten";
}

TEST(Heartbeat, StalePhraseNamesOldAndMissingHeartbeatsOfOtherRanks) {
  TempDir dir;
  Heartbeat beat(dir.path.string(), 0, 4, 0.2);
  char when[64];
  std::snprintf(when, sizeof when, "%.3f", heartbeat_detail::unix_now() - 10);
  std::ofstream(dir.path / "heartbeat-1")
      << "rank 1\nhost node2\npid 7\ncollectives 41\ncompleted_unix " << when << "\nlast x\n";
  std::snprintf(when, sizeof when, "%.3f", heartbeat_detail::unix_now());
  std::ofstream(dir.path / "heartbeat-2")
      << "rank 2\nhost node2\npid 8\ncollectives 42\ncompleted_unix " << when << "\nlast x\n";
  const std::string phrase = beat.stale_phrase(5);
  EXPECT_EQ(phrase.rfind("stale heartbeats (no collective completed in 5 s): rank 1 on node2 "
                         "(41 done, last 10.",
                         0),
            0u)
      << phrase;
  EXPECT_NE(phrase.find("rank 3 (no heartbeat file)"), std::string::npos) << phrase;
  EXPECT_EQ(phrase.find("rank 2"), std::string::npos) << "a fresh heartbeat is not stale";
  EXPECT_EQ(phrase.find("rank 0"), std::string::npos) << "its own rank is not listed";
  EXPECT_EQ(beat.stale_phrase(60).find("rank 1"), std::string::npos) << beat.stale_phrase(60);
}

TEST(Heartbeat, TheWatchdogNamesStaleRanksAndWritesTheAbortNote) {
  TempDir dir;
  auto beat = std::make_shared<Heartbeat>(dir.path.string(), 0, 2, 0.05);
  std::string said;
  Watchdog dog(
      0, 0.1, [&](const std::string& line) { said = line; }, beat);
  dog.start("barrier (collective #3)");
  sleep_seconds(0.15);
  dog.check();
  EXPECT_NE(said.find("rank 0: watchdog: barrier (collective #3) has not completed in 0.1 s; "
                      "stale heartbeats (no collective completed in 0.1 s): rank 1 (no heartbeat "
                      "file); aborting the job"),
            std::string::npos)
      << said;
  EXPECT_EQ(read(dir.path / "abort-0"), "code 70\nline " + said + "\n");
}

TEST(Heartbeat, OnePerRunDirectoryAndRankNoneWithoutADirectory) {
  TempDir dir;
  EXPECT_EQ(Heartbeat::of("", 0, 2), nullptr);
  auto a = Heartbeat::of(dir.path.string(), 0, 2);
  auto b = Heartbeat::of(dir.path.string(), 0, 2);
  auto c = Heartbeat::of(dir.path.string(), 1, 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  write_abort_note("", 0, "nothing", 2);  // no directory: nothing written, no error
  write_abort_note(dir.path.string(), 5, "ruche: rank 5: error: x", 2);
  EXPECT_EQ(read(dir.path / "abort-5"), "code 2\nline ruche: rank 5: error: x\n");
}

}  // namespace
}  // namespace ruche
