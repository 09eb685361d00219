// Raw MPI collectives for benchmarks/allreduce_bench.cc: the baseline our MpiCommunicator is
// measured against. They live in comm/ because only comm/ may include mpi.h; this header does not.
//
// Threads: these call MPI from the caller's thread, which breaks World's rule that only a comm
// thread calls MPI. It is safe for the benchmark because it never overlaps them with a
// communicator's collective: every Work is waited on before a raw call starts, and the Work's
// mutex orders the two threads' MPI calls (MPI_THREAD_SERIALIZED is enough). Not for training.
#pragma once

#include <cstdint>
#include <string>

#include "comm/world.h"

namespace ruche {

// How the raw baseline waits, to tell the collective's algorithm apart from the way it is waited.
enum class RawMode {
  blocking,          // MPI_Allreduce: Open MPI's tuned blocking algorithms (the baseline)
  nonblocking,       // MPI_Iallreduce + MPI_Wait: the nonblocking algorithm ruche posts, spun on
  backoff_poll,      // MPI_Iallreduce + MPI_Test with ruche's yields and sleeps, on this thread
  barrier_blocking,  // MPI_Ibarrier waited with ruche's polling, then MPI_Allreduce: ruche's
                     // large-message path without its comm thread
};
const char* raw_mode_name(RawMode mode);

// Seconds per call of `iterations` in-place f32 sum all-reduces of data[0, count) over the
// World's ranks, after a barrier, timed with MPI_Wtime; the slowest rank's figure (every rank
// gets it). Every rank must call it with the same count and iterations.
double raw_mpi_allreduce_seconds(const World& world, float* data, std::int64_t count,
                                 int iterations, RawMode mode = RawMode::blocking);

// The largest `value` over ranks (MPI_Allreduce MPI_MAX), on every rank.
double max_over_ranks(const World& world, double value);

// MPI_Get_library_version's first line, e.g. "Open MPI v4.1.4, package: Debian OpenMPI, ...".
std::string mpi_library_version();

}  // namespace ruche
