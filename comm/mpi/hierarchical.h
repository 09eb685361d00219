// The hierarchical all-reduce on MPI (CommOptions::hierarchical_allreduce): reduce to each node's
// leader (local rank 0), all-reduce across the leaders, broadcast within each node. Only the
// leaders use the inter-node links, each sending one buffer instead of local_size of them.
#pragma once

#include <mpi.h>

namespace ruche {

class Watchdog;

// The two communicators it runs on, made once from the World's (comm/mpi/mpi_world.h).
struct NodeComms {
  MPI_Comm node = MPI_COMM_NULL;     // this node's ranks, the leader first
  MPI_Comm leaders = MPI_COMM_NULL;  // one rank per node; MPI_COMM_NULL off the leaders

  // Collective over `world`: `node` duplicates `local`, `leaders` splits off local rank 0s.
  static NodeComms make(MPI_Comm world, MPI_Comm local);
  void free();
};

// In place, on every rank of the job: the `op` reduction of everyone's `count` elements at
// `data`. Each stage is polled (comm/mpi/poll) under `watchdog`.
void hierarchical_all_reduce(void* data, int count, MPI_Datatype type, MPI_Op op,
                             const NodeComms& comms, Watchdog* watchdog);

}  // namespace ruche
