// Waiting for a nonblocking MPI request without burning a core: the one polling loop of the MPI
// communicator (and of the benchmark that measures what it costs).
#pragma once

#include <mpi.h>

namespace ruche {

class Watchdog;

// Yields for the first 50 us (a short collective, or peers that arrive together, finish in that
// time), then sleeps doubling from 8 us to 200 us: ranks that share cores keep theirs, and since
// Open MPI progresses only inside MPI calls, the cap keeps long transfers moving. Between polls
// the watchdog (when given) may end the job.
void wait_for(MPI_Request* request, Watchdog* watchdog = nullptr);

}  // namespace ruche
