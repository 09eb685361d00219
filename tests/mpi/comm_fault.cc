// comm_fault MODE: an MPI job that the comm layer must end with MPI_Abort (exit 70) and one line
// naming what went wrong; run by tests/mpi/expect_abort.cmake under mpirun -np 2.
//   hang   rank 1 never issues the all-reduce rank 0 waits in (stuck in compute): rank 0's
//          watchdog ends the job after its 1 s timeout.
//   count  check_collectives: the ranks all-reduce different counts (a different bucket plan).
//   skip   check_collectives: rank 1 skips gradient bucket 2 and goes on to bucket 3 (the same
//          size: told apart by the labels).
// Returns 1 if the job was not ended.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi/mpi_communicator.h"
#include "comm/world.h"

int main(int argc, char** argv) {
  using namespace ruche;
  const std::string mode = argc > 1 ? argv[1] : "";
  World world;
  CommOptions options;
  options.timeout_seconds = 1;
  options.check_collectives = mode != "hang";
  MpiCommunicator comm(world, options);
  const int rank = comm.rank();
  std::vector<float> x(1000, 1.0f);
  auto floats = [&](std::int64_t n) { return BufferView{x.data(), DType::f32, n, Device::cpu()}; };
  comm.barrier("start").wait();
  if (mode == "hang") {
    if (rank == 1) {
      std::this_thread::sleep_for(std::chrono::seconds(60));
    } else {
      comm.all_reduce(floats(1000), ReduceOp::sum, "gradient bucket 1 of 1").wait();
    }
  } else if (mode == "count") {
    comm.all_reduce(floats(rank == 0 ? 1000 : 999), ReduceOp::avg, "gradient bucket 1 of 1").wait();
  } else if (mode == "skip") {
    if (rank != 1) comm.all_reduce(floats(1000), ReduceOp::avg, "gradient bucket 2 of 3").wait();
    comm.all_reduce(floats(1000), ReduceOp::avg, "gradient bucket 3 of 3").wait();
  } else {
    std::fprintf(stderr, "comm_fault: expected a mode: hang, count or skip\n");
    return 2;
  }
  std::fprintf(stderr, "comm_fault: rank %d: '%s' was not caught\n", rank, mode.c_str());
  return 1;
}
