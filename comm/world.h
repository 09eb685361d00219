// World: this process's place in the job. Initializes MPI on construction and finalizes it on
// destruction, so exactly one World lives per process, for the whole run (MPI cannot be
// initialized twice). Without mpirun it is a singleton world of size 1.
//
// Threads: MPI is initialized asking for MPI_THREAD_MULTIPLE and requiring at least
// MPI_THREAD_SERIALIZED. Our rule is simpler than either: after construction, only a
// communicator's comm thread calls MPI (the World itself calls it again only in its destructor,
// after every communicator is gone), so calls never overlap and SERIALIZED is enough.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ruche {

struct WorldOptions {
  // K > 0 splits the ranks into K pretend nodes of consecutive ranks (local rank and size
  // follow), to test hierarchical paths on one machine; 0 uses the real nodes (shared memory).
  int fake_nodes = 0;
  // > 0: a rank whose World is not up in this many seconds (MPI_Init and the start-up
  // collectives: a peer that never started, died or is stopped, which no collective watchdog
  // sees yet) says so and ends with kExitCollectiveFailed (70), so mpirun ends the job and the
  // launcher restarts it. train passes --comm-timeout.
  double start_timeout_seconds = 0;

  // RUCHE_FAKE_NODES=K from the environment; 0 when unset. A bad value is a ruche::Error.
  static WorldOptions from_env();
};

// The pretend node of `rank` when `size` ranks are split into `nodes` blocks of consecutive ranks.
int fake_node_of(int rank, int size, int nodes);

// A CPU affinity mask (sched_getaffinity) as bits, 64 CPUs a word.
using CpuMask = std::vector<std::uint64_t>;
CpuMask this_thread_cpus();

// How a rank shares its host's cores: the cores in its mask, the ranks of this host whose masks
// overlap it (itself included: all of them when mpirun bound none, one when it gave each rank its
// own cores), and the threads that leaves it (cores / sharing, at least 1).
struct CoreShare {
  int cores = 1;
  int sharing = 1;
  int threads() const { return cores / sharing > 0 ? cores / sharing : 1; }
};
CoreShare share_cores(const std::vector<CpuMask>& host_masks, int me);

class World {
 public:
  explicit World(const WorldOptions& options = WorldOptions::from_env());
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // among the ranks of this node; picks the GPU
  int local_size() const { return local_size_; }
  int node() const { return node_; }  // 0 .. num_nodes-1, numbered by their lowest rank
  int num_nodes() const { return num_nodes_; }
  const std::string& host_name() const { return host_names_[rank_]; }
  const std::vector<std::string>& host_names() const { return host_names_; }  // by rank
  int thread_level() const { return thread_level_; }  // what MPI_Init_thread provided
  // This rank's share of its host's cores (share_cores over the ranks of the real host, also
  // under RUCHE_FAKE_NODES): what --threads 0 turns into.
  const CoreShare& core_share() const { return core_share_; }

  // Ends every rank of the job now (MPI_Abort) with `exit_code`: what a rank that fails does
  // after printing why, so the others never wait on it in a collective.
  [[noreturn]] void abort(int exit_code) const;

  // The MPI handles, for comm/mpi only (defined in comm/mpi/mpi_world.h).
  struct Handles;
  const Handles& handles() const { return *handles_; }

 private:
  std::unique_ptr<Handles> handles_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, node_ = 0, num_nodes_ = 1;
  int thread_level_ = 0;
  std::vector<std::string> host_names_;
  CoreShare core_share_;
};

}  // namespace ruche
