#include "comm/mpi/poll.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "comm/mpi/mpi_check.h"
#include "comm/watchdog.h"

namespace ruche {

void wait_for(MPI_Request* request, Watchdog* watchdog) {
  using Clock = std::chrono::steady_clock;
  const auto spin_until = Clock::now() + std::chrono::microseconds(50);
  auto pause = std::chrono::microseconds(4);
  for (;;) {
    int done = 0;
    MPI_CHECK(MPI_Test(request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    if (watchdog) watchdog->check();
    if (Clock::now() < spin_until) {
      std::this_thread::yield();
    } else {
      pause = std::min(pause * 2, std::chrono::microseconds(200));
      std::this_thread::sleep_for(pause);
    }
  }
}

}  // namespace ruche
