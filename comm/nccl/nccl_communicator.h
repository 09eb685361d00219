// NcclCommunicator: collectives on device (CUDA) buffers over NCCL, one communicator per job
// (and, with hierarchical_allreduce, one per node and one across the node leaders, split from
// it). Rank 0 makes the ncclUniqueId and the host (MPI) communicator broadcasts it; each rank
// joins on its own device.
//
// Streams: collectives run on a dedicated non-blocking stream that first waits on an event
// recorded on the compute stream (ops' stream, cuda::compute_stream()), so they follow the
// kernels that produced their buffers without a host sync. Work::wait makes the compute stream
// wait on the collective's completion event and returns at once (the host runs ahead); with
// NcclOptions::host_wait it blocks the host until the collective is done. Work::test asks the
// event. Between begin_group() and end_group() collectives are one NCCL group (ncclGroupStart/
// End: several buckets, one launch).
//
// Hangs and failures: a poll thread watches the in-flight collectives in order under the
// Watchdog (comm/watchdog.h) and asks ncclCommGetAsyncError; a collective running past
// CommOptions::timeout_seconds, an asynchronous NCCL error (a peer died, a network error) or a
// failed kernel prints one line naming the rank and the collective, aborts the NCCL
// communicators (ncclCommAbort) and ends the job (exit kExitCollectiveFailed).
//
// Per-rank counts (reduce_scatter_v, all_gather_v: ZeRO-1's ranges are unequal): NCCL's
// ReduceScatter and AllGather need equal chunks, so each runs as one group of a ncclReduce rooted
// at each rank with a non-empty chunk (or a ncclBroadcast from it), launched together. Padding
// to equal chunks would copy every bucket into and out of a scratch buffer, and the padded size is
// the largest range times the world size: a rank with one large tensor would make every rank move
// several times the bucket. The group moves each element once, as PyTorch's uneven collectives do.
//
// Dtypes: f32, f16, bf16 sum and average (ncclAvg), i32/i64 sum; u8 too for broadcast and
// all_gather. Host views are an error (comm/routed_communicator sends them to MPI). No CUDA or
// NCCL header here: the CLI includes it. Built only with CUDA (RUCHE_WITH_CUDA).
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/world.h"

namespace ruche {

struct NcclOptions {
  // Work::wait blocks the host until the collective completed (tests, host reads of the result).
  bool host_wait = false;
};

class NcclCommunicator final : public Communicator {
 public:
  // Collective over every rank of `world`: `host` (same ranks, host buffers) carries the id.
  // `device` is this rank's CUDA device (local rank). The World and host must outlive this.
  NcclCommunicator(const World& world, Communicator& host, int device,
                   const CommOptions& options = {}, const NcclOptions& nccl = {});
  ~NcclCommunicator() override;  // waits for what is in flight (under the watchdog)

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool takes_device_buffers() const override { return true; }

 protected:
  Work do_all_reduce(BufferView buffer, ReduceOp op, std::string_view label) override;
  Work do_broadcast(BufferView buffer, int root, std::string_view label) override;
  Work do_all_gather(BufferView send, BufferView recv, std::string_view label) override;
  Work do_reduce_scatter(BufferView send, BufferView recv, ReduceOp op,
                         std::string_view label) override;
  Work do_reduce_scatter_v(BufferView send, BufferView recv, std::vector<std::int64_t> counts,
                           ReduceOp op, std::string_view label) override;
  Work do_all_gather_v(BufferView buffer, std::vector<std::int64_t> counts,
                       std::string_view label) override;
  Work do_barrier(std::string_view label) override;  // on the host communicator
  void do_begin_group() override;
  void do_end_group() override;

 private:
  struct State;  // NCCL communicators, stream, poll thread (nccl_communicator.cc)
  std::unique_ptr<State> state_;
  Communicator& host_;
  const int rank_, size_;
};

// "NCCL X.Y.Z (built X.Y.Z)": the loaded libnccl's version (ncclGetVersion, no device needed)
// beside nccl.h's; `ruche devices` prints it after cuda::library_versions().
std::string nccl_version();

}  // namespace ruche
