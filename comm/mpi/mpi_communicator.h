// MpiCommunicator: collectives on host buffers over MPI, run by one communication thread in
// submission order, so every rank issues them identically and the caller (backward) keeps
// computing. Waiting costs no core: the thread sleeps on a condition variable while its queue is
// empty, and polls a pending MPI request with MPI_Test and growing sleeps, never a busy spin.
//
// Dtypes: f32 sums and averages, i32/i64 sum; f32, i32, i64 and u8 for broadcast and all_gather. Views on
// a device other than cpu are an error (NCCL handles those). The World must outlive it.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "comm/communicator.h"
#include "comm/world.h"

namespace ruche {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const World& world);
  ~MpiCommunicator() override;  // runs what is queued, then stops the thread

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Work all_reduce(BufferView buffer, ReduceOp op) override;
  Work broadcast(BufferView buffer, int root) override;
  Work all_gather(BufferView send, BufferView recv) override;
  Work reduce_scatter(BufferView send, BufferView recv, ReduceOp op) override;
  Work barrier() override;

 private:
  struct Task;  // one queued collective (mpi_communicator.cc)
  Work submit(std::unique_ptr<Task> task);
  void run();  // the comm thread

  struct Comm;                  // this communicator's MPI_Comm, away from mpi.h
  std::unique_ptr<Comm> comm_;  // used by the comm thread only, once it runs
  int rank_ = 0, size_ = 1;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Task>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ruche
