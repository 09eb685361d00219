#include "comm/mpi/raw_allreduce.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

#include "comm/mpi/mpi_check.h"
#include "comm/mpi/mpi_world.h"
#include "comm/mpi/poll.h"
#include "engine/error.h"

namespace ruche {

const char* raw_mode_name(RawMode mode) {
  switch (mode) {
    case RawMode::blocking:
      return "MPI_Allreduce";
    case RawMode::nonblocking:
      return "MPI_Iallreduce+MPI_Wait";
    case RawMode::backoff_poll:
      return "MPI_Iallreduce+backoff MPI_Test";
    case RawMode::barrier_blocking:
      return "MPI_Ibarrier+backoff MPI_Test, MPI_Allreduce";
  }
  return "?";
}

double raw_mpi_allreduce_seconds(const World& world, float* data, std::int64_t count,
                                 int iterations, RawMode mode) {
  RUCHE_REQUIRE(count >= 0 && count <= INT_MAX && iterations > 0)
      << "raw_mpi_allreduce_seconds: count " << count << ", iterations " << iterations;
  MPI_Comm comm = world.handles().world;
  const int n = static_cast<int>(count);
  MPI_CHECK(MPI_Barrier(comm));  // start together: the time is the collective's, not the skew's
  const double start = MPI_Wtime();
  for (int i = 0; i < iterations; ++i) {
    if (mode == RawMode::barrier_blocking) {
      MPI_Request barrier = MPI_REQUEST_NULL;
      MPI_CHECK(MPI_Ibarrier(comm, &barrier));
      wait_for(&barrier);
    }
    if (mode == RawMode::blocking || mode == RawMode::barrier_blocking) {
      MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, comm));
      continue;
    }
    MPI_Request request = MPI_REQUEST_NULL;
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, comm, &request));
    if (mode == RawMode::nonblocking) {
      MPI_CHECK(MPI_Wait(&request, MPI_STATUS_IGNORE));
    } else {
      wait_for(&request);
    }
  }
  const double seconds = (MPI_Wtime() - start) / iterations;
  return max_over_ranks(world, seconds);
}

double max_over_ranks(const World& world, double value) {
  double result = 0;
  MPI_CHECK(MPI_Allreduce(&value, &result, 1, MPI_DOUBLE, MPI_MAX, world.handles().world));
  return result;
}

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_CHECK(MPI_Get_library_version(text, &length));
  std::string version(text);  // up to the NUL that `length` may count
  const std::size_t end = version.find('\n');
  return end == std::string::npos ? version : version.substr(0, end);
}

}  // namespace ruche
