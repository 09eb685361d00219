// MpiCommunicator: collectives on host buffers over MPI, run by one communication thread in
// submission order, so every rank issues them identically and the caller (backward) keeps
// computing. Waiting costs no core: the thread sleeps on a condition variable while its queue is
// empty, and polls a pending MPI request with MPI_Test and growing sleeps, never a busy spin.
//
// Dtypes: f32, f16 and bf16 sum and average (16-bit sums through our own MPI ops: MPI has no half
// type), i32/i64 sum; all of these and u8 for broadcast and all_gather. Views on a device other
// than cpu are an error (NCCL handles those). The World must outlive it.
//
// Hangs (CommOptions): the comm thread runs each collective under a Watchdog that aborts the job
// (exit kExitCollectiveFailed) when it has not completed in timeout_seconds; with
// check_collectives, ranks all-gather each collective's description first and abort, naming
// both sides, when they differ. With CommOptions::run_dir, each completed collective is the rank's
// heartbeat (comm/heartbeat.h).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "comm/communicator.h"
#include "comm/heartbeat.h"
#include "comm/watchdog.h"
#include "comm/world.h"

namespace ruche {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const World& world, const CommOptions& options = {});
  ~MpiCommunicator() override;  // runs what is queued, then stops the thread

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  const CommOptions& options() const { return options_; }

 protected:
  Work do_all_reduce(BufferView buffer, ReduceOp op, std::string_view label) override;
  Work do_broadcast(BufferView buffer, int root, std::string_view label) override;
  Work do_all_gather(BufferView send, BufferView recv, std::string_view label) override;
  Work do_reduce_scatter(BufferView send, BufferView recv, ReduceOp op,
                         std::string_view label) override;
  Work do_barrier(std::string_view label) override;
  // MPI_Ireduce_scatter with recvcounts; MPI_Iallgatherv in place.
  Work do_reduce_scatter_v(BufferView send, BufferView recv, std::vector<std::int64_t> counts,
                           ReduceOp op, std::string_view label) override;
  Work do_all_gather_v(BufferView buffer, std::vector<std::int64_t> counts,
                       std::string_view label) override;

 private:
  struct Task;  // one queued collective (mpi_communicator.cc)
  Work submit(std::unique_ptr<Task> task);
  void run();                                      // the comm thread
  void check_same_on_all_ranks(const Task& task);  // check_collectives, on the comm thread

  struct Comm;                  // this communicator's MPI_Comm and ops, away from mpi.h
  std::unique_ptr<Comm> comm_;  // used by the comm thread only, once it runs
  const World& world_;
  const CommOptions options_;
  int rank_ = 0, size_ = 1;
  std::shared_ptr<Heartbeat> heartbeat_;  // with options.run_dir: shared with NCCL's, if any
  std::shared_ptr<Watchdog> watchdog_;    // shared with the Work handles that wait on it
  std::mutex mutex_;
  std::uint64_t submitted_ = 0;  // collectives so far: the next one's sequence number - 1
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Task>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ruche
