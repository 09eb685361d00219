#include "comm/world.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "comm/mpi/mpi_check.h"
#include "comm/mpi/mpi_world.h"
#include "comm/watchdog.h"
#include "engine/error.h"

namespace ruche {

WorldOptions WorldOptions::from_env() {
  WorldOptions options;
  const char* text = std::getenv("RUCHE_FAKE_NODES");
  if (text == nullptr || *text == '\0') return options;
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, options.fake_nodes);
  RUCHE_REQUIRE(ec == std::errc() && ptr == end && options.fake_nodes >= 0)
      << "RUCHE_FAKE_NODES: expected a number of nodes (0 or more), got '" << text << "'";
  return options;
}

CpuMask this_thread_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  CpuMask mask((CPU_SETSIZE + 63) / 64, 0);
  if (sched_getaffinity(0, sizeof set, &set) != 0) {  // unknown: the cores that are online
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < std::min<long>(online, CPU_SETSIZE); ++c) mask[c / 64] |= 1ull << (c % 64);
    return mask;
  }
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) mask[c / 64] |= 1ull << (c % 64);
  }
  return mask;
}

CoreShare share_cores(const std::vector<CpuMask>& host_masks, int me) {
  RUCHE_CHECK(me >= 0 && me < static_cast<int>(host_masks.size())) << "share_cores: rank " << me;
  const CpuMask& mine = host_masks[static_cast<std::size_t>(me)];
  CoreShare share;
  share.cores = 0;
  for (std::uint64_t word : mine) share.cores += std::popcount(word);
  share.cores = std::max(share.cores, 1);
  share.sharing = 0;
  for (const CpuMask& other : host_masks) {
    bool overlaps = false;
    for (std::size_t w = 0; w < std::min(other.size(), mine.size()); ++w) {
      overlaps = overlaps || (other[w] & mine[w]) != 0;
    }
    share.sharing += overlaps ? 1 : 0;
  }
  return share;
}

int fake_node_of(int rank, int size, int nodes) {
  RUCHE_REQUIRE(nodes >= 1 && nodes <= size) << "RUCHE_FAKE_NODES=" << nodes << ": expected 1 to "
                                             << size << " nodes for " << size << " ranks";
  return static_cast<int>(static_cast<std::int64_t>(rank) * nodes / size);
}

namespace {

// Ends this process with kExitCollectiveFailed when it is not disarmed (destroyed) in time.
class StartGuard {
 public:
  explicit StartGuard(double seconds) {
    if (seconds <= 0) return;
    thread_ = std::thread([this, seconds] {
      std::unique_lock<std::mutex> lock(mutex_);
      const auto limit = std::chrono::duration<double>(seconds);
      if (done_cv_.wait_for(lock, limit, [this] { return done_; })) return;
      const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
      if (!rank) rank = std::getenv("PMI_RANK");
      if (!rank) rank = std::getenv("SLURM_PROCID");
      std::fprintf(stderr,
                   "ruche: rank %s: watchdog: the ranks did not all start in %g s (MPI_Init and "
                   "the start-up collectives: a rank that never started, died or hangs); aborting "
                   "the job\n",
                   rank ? rank : "?", seconds);
      std::fflush(stderr);
      std::_Exit(kExitCollectiveFailed);
    });
  }
  StartGuard(const StartGuard&) = delete;
  StartGuard& operator=(const StartGuard&) = delete;
  ~StartGuard() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

World::World(const WorldOptions& options) : handles_(std::make_unique<Handles>()) {
  const StartGuard guard(options.start_timeout_seconds);
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized));
  RUCHE_CHECK(!initialized) << "MPI is already initialized: one World per process";
  MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &thread_level_));
  if (thread_level_ < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    RUCHE_FAIL() << "MPI provides thread level " << thread_level_
                 << ", ruche needs MPI_THREAD_SERIALIZED or more (a comm thread calls MPI)";
  }

  Handles& h = *handles_;
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &h.world));
  MPI_CHECK(MPI_Comm_set_errhandler(h.world, MPI_ERRORS_RETURN));  // MPI_CHECK reports errors
  MPI_CHECK(MPI_Comm_rank(h.world, &rank_));
  MPI_CHECK(MPI_Comm_size(h.world, &size_));

  if (options.fake_nodes > 0) {
    MPI_CHECK(
        MPI_Comm_split(h.world, fake_node_of(rank_, size_, options.fake_nodes), rank_, &h.local));
  } else {
    MPI_CHECK(MPI_Comm_split_type(h.world, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &h.local));
  }
  MPI_CHECK(MPI_Comm_rank(h.local, &local_rank_));
  MPI_CHECK(MPI_Comm_size(h.local, &local_size_));

  // Nodes are numbered by their leaders (local rank 0) in rank order.
  int leader = local_rank_ == 0 ? 1 : 0;
  int leaders_before = 0;
  MPI_CHECK(MPI_Allreduce(&leader, &num_nodes_, 1, MPI_INT, MPI_SUM, h.world));
  MPI_CHECK(MPI_Exscan(&leader, &leaders_before, 1, MPI_INT, MPI_SUM, h.world));
  if (rank_ == 0) leaders_before = 0;  // Exscan leaves rank 0's result undefined
  node_ = leaders_before;
  MPI_CHECK(MPI_Bcast(&node_, 1, MPI_INT, 0, h.local));

  // Cores are shared by the ranks of the real host, whatever RUCHE_FAKE_NODES pretends.
  MPI_Comm host = MPI_COMM_NULL;
  MPI_CHECK(MPI_Comm_split_type(h.world, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &host));
  int host_rank = 0, host_size = 1;
  MPI_CHECK(MPI_Comm_rank(host, &host_rank));
  MPI_CHECK(MPI_Comm_size(host, &host_size));
  const CpuMask mine = this_thread_cpus();
  std::vector<std::uint64_t> masks(mine.size() * static_cast<std::size_t>(host_size));
  MPI_CHECK(MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_UINT64_T, masks.data(),
                          static_cast<int>(mine.size()), MPI_UINT64_T, host));
  MPI_CHECK(MPI_Comm_free(&host));
  std::vector<CpuMask> host_masks;
  host_masks.reserve(static_cast<std::size_t>(host_size));
  for (int r = 0; r < host_size; ++r) {
    host_masks.emplace_back(masks.begin() + static_cast<std::ptrdiff_t>(r * mine.size()),
                            masks.begin() + static_cast<std::ptrdiff_t>((r + 1) * mine.size()));
  }
  core_share_ = share_cores(host_masks, host_rank);

  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  MPI_CHECK(MPI_Get_processor_name(name, &length));
  std::vector<char> all(static_cast<std::size_t>(size_) * MPI_MAX_PROCESSOR_NAME);
  MPI_CHECK(MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(),
                          MPI_MAX_PROCESSOR_NAME, MPI_CHAR, h.world));
  for (int r = 0; r < size_; ++r) {
    const char* p = all.data() + static_cast<std::size_t>(r) * MPI_MAX_PROCESSOR_NAME;
    host_names_.emplace_back(p, strnlen(p, MPI_MAX_PROCESSOR_NAME));
  }
}

void World::abort(int exit_code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this is for the compiler
}

World::~World() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (handles_->local != MPI_COMM_NULL) MPI_Comm_free(&handles_->local);
  if (handles_->world != MPI_COMM_NULL) MPI_Comm_free(&handles_->world);
  MPI_Finalize();
}

}  // namespace ruche
