#include "comm/mpi/hierarchical.h"

#include "comm/mpi/mpi_check.h"
#include "comm/mpi/poll.h"

namespace ruche {

NodeComms NodeComms::make(MPI_Comm world, MPI_Comm local) {
  NodeComms comms;
  MPI_CHECK(MPI_Comm_dup(local, &comms.node));
  int local_rank = 0, rank = 0;
  MPI_CHECK(MPI_Comm_rank(local, &local_rank));
  MPI_CHECK(MPI_Comm_rank(world, &rank));
  MPI_CHECK(MPI_Comm_split(world, local_rank == 0 ? 0 : MPI_UNDEFINED, rank, &comms.leaders));
  return comms;
}

void NodeComms::free() {
  if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
  if (leaders != MPI_COMM_NULL) MPI_Comm_free(&leaders);
}

void hierarchical_all_reduce(void* data, int count, MPI_Datatype type, MPI_Op op,
                             const NodeComms& comms, Watchdog* watchdog) {
  int local_rank = 0, local_size = 1;
  MPI_CHECK(MPI_Comm_rank(comms.node, &local_rank));
  MPI_CHECK(MPI_Comm_size(comms.node, &local_size));
  MPI_Request request = MPI_REQUEST_NULL;
  if (local_size > 1) {  // the leader receives the node's sum in place
    const void* send = local_rank == 0 ? MPI_IN_PLACE : data;
    MPI_CHECK(MPI_Ireduce(send, local_rank == 0 ? data : nullptr, count, type, op, 0, comms.node,
                          &request));
    wait_for(&request, watchdog);
  }
  if (comms.leaders != MPI_COMM_NULL) {
    int leaders = 1;
    MPI_CHECK(MPI_Comm_size(comms.leaders, &leaders));
    if (leaders > 1) {
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, count, type, op, comms.leaders, &request));
      wait_for(&request, watchdog);
    }
  }
  if (local_size > 1) {
    MPI_CHECK(MPI_Ibcast(data, count, type, 0, comms.node, &request));
    wait_for(&request, watchdog);
  }
}

}  // namespace ruche
