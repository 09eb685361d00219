// Communicator: the collectives a data-parallel job needs, on typed views, each returning an
// asynchronous Work handle. The backend follows from the view's device: MPI for host memory
// (comm/mpi), NCCL for device memory (comm/nccl); comm/routed_communicator joins the two. Every
// rank must issue the same collectives in the same order; a mismatch is a hang, which the
// watchdog ends and check_collectives names.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tensor/device.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/tensor.h"

namespace ruche {

// `count` elements of `dtype` at `data` on `device`: an element count, never a byte count.
struct BufferView {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::int64_t count = 0;
  Device device = Device::cpu();

  // The elements of a contiguous tensor; the tensor must outlive the collective.
  static BufferView of(const Tensor& tensor);
  std::size_t nbytes() const { return static_cast<std::size_t>(count) * dtype_size(dtype); }
  std::string str() const;  // "f32[1024] cpu"
};

enum class ReduceOp { sum, avg };  // avg: the sum divided by the world size

// How a communicator guards against hangs; the same on every rank.
struct CommOptions {
  // A collective still running after this many seconds aborts the job, naming rank and
  // collective (comm/watchdog.h). <= 0: wait forever.
  double timeout_seconds = 600;
  // Before each collective, ranks compare its sequence number, kind, dtype and count, so a rank
  // that skipped one or a different bucket plan is reported instead of hanging. Costs one small
  // all-gather per collective: for debugging.
  bool check_collectives = false;
  // --hierarchical-allreduce: an all-reduce is a reduce within each node, an all-reduce across
  // the node leaders (local rank 0), and a broadcast within each node, so only one rank per node
  // sends over the inter-node links (comm/README.md says when it pays).
  bool hierarchical_allreduce = false;
  // The run directory (ruche train's --out), or empty. When set, each rank keeps
  // RUN/heartbeat-<rank> (its last completed collective, rewritten at most once a second), the
  // watchdog names the ranks whose heartbeat is stale, and a rank that aborts the job first
  // writes RUN/abort-<rank> (comm/heartbeat.h).
  std::string run_dir;
};

// When a collective ran on its backend (its turn on the comm thread, or on the stream): what a
// timeline draws. Both zero when the backend does not say.
struct CollectiveTimes {
  std::chrono::steady_clock::time_point started, finished;
};

// What a backend's handle does; Work wraps one.
class WorkImpl {
 public:
  virtual ~WorkImpl() = default;
  virtual bool test() = 0;  // done? rethrows the collective's error
  virtual void wait() = 0;  // blocks until done; rethrows the collective's error
  virtual CollectiveTimes times() const { return {}; }  // once done
};

// An asynchronous collective. The buffers belong to it until wait() returns (or test() says
// true). Move-only. An empty Work (default, or already waited) is done. Destroying a pending Work
// waits for it and drops its error: call wait() to see errors.
class Work {
 public:
  Work() = default;
  explicit Work(std::shared_ptr<WorkImpl> impl) : impl_(std::move(impl)) {}
  Work(Work&&) noexcept = default;
  Work& operator=(Work&& other) noexcept;
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;
  ~Work();

  bool test();
  // Returns when the collective ran (zero for an empty Work).
  CollectiveTimes wait();

 private:
  void finish_quietly() noexcept;
  std::shared_ptr<WorkImpl> impl_;
};

class Communicator {
 public:
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // `label` says what a collective is for ("gradient bucket 3 of 5 (elements [a, b))"); the
  // watchdog and check_collectives name it. Each call forwards to the backend's do_* below.

  // In place: every rank ends with the same reduction of everyone's `buffer`.
  Work all_reduce(BufferView buffer, ReduceOp op, std::string_view label = {}) {
    return do_all_reduce(buffer, op, label);
  }
  // In place: `buffer` on every rank becomes root's.
  Work broadcast(BufferView buffer, int root, std::string_view label = {}) {
    return do_broadcast(buffer, root, label);
  }
  // recv (count = size * send.count) holds every rank's send, in rank order.
  Work all_gather(BufferView send, BufferView recv, std::string_view label = {}) {
    return do_all_gather(send, recv, label);
  }
  // send holds size chunks of recv.count; rank r receives the reduction of everyone's chunk r.
  Work reduce_scatter(BufferView send, BufferView recv, ReduceOp op, std::string_view label = {}) {
    return do_reduce_scatter(send, recv, op, label);
  }
  Work barrier(std::string_view label = {}) { return do_barrier(label); }

  // Per-rank counts (ZeRO-1's ranges cut at tensor boundaries are unequal; zeros allowed),
  // counts.size() == size(). Backends without them throw (the default below).
  // send holds the chunks of counts[0], counts[1], ... elements in rank order; rank r receives the
  // reduction of everyone's chunk r into recv (counts[r] elements; recv must not overlap send).
  Work reduce_scatter_v(BufferView send, BufferView recv, std::vector<std::int64_t> counts,
                        ReduceOp op, std::string_view label = {}) {
    return do_reduce_scatter_v(send, recv, std::move(counts), op, label);
  }
  // In place: buffer holds the chunks of counts[0], counts[1], ... elements in rank order; each
  // rank's own chunk goes to every rank, so all end with the same buffer.
  Work all_gather_v(BufferView buffer, std::vector<std::int64_t> counts,
                    std::string_view label = {}) {
    return do_all_gather_v(buffer, std::move(counts), label);
  }

  // Collectives issued between begin_group() and end_group() may be launched as one (NCCL group
  // calls: several ready buckets in one launch). Their Work handles are valid once end_group()
  // returns. Backends without groups run them one by one.
  void begin_group() { do_begin_group(); }
  void end_group() { do_end_group(); }

  // Whether device (CUDA) buffers may be given (NCCL); otherwise host buffers only (MPI).
  virtual bool takes_device_buffers() const { return false; }

 protected:
  // Non-virtual wrappers above, so a default label never depends on the static type.
  virtual Work do_all_reduce(BufferView buffer, ReduceOp op, std::string_view label) = 0;
  virtual Work do_broadcast(BufferView buffer, int root, std::string_view label) = 0;
  virtual Work do_all_gather(BufferView send, BufferView recv, std::string_view label) = 0;
  virtual Work do_reduce_scatter(BufferView send, BufferView recv, ReduceOp op,
                                 std::string_view label) = 0;
  virtual Work do_barrier(std::string_view label) = 0;
  virtual Work do_reduce_scatter_v(BufferView send, BufferView recv,
                                   std::vector<std::int64_t> counts, ReduceOp op,
                                   std::string_view label);
  virtual Work do_all_gather_v(BufferView buffer, std::vector<std::int64_t> counts,
                               std::string_view label);
  virtual void do_begin_group() {}
  virtual void do_end_group() {}
};

// begin_group() now and end_group() when the scope ends, also when an exception unwinds through
// it: a group left open defers every later collective of this rank (NCCL) until the watchdog ends
// the job. `active` false: no group (one collective needs none).
class CommGroup {
 public:
  explicit CommGroup(Communicator& comm, bool active = true);
  ~CommGroup();  // on unwind an error from ending the group is dropped: the first one propagates
  CommGroup(const CommGroup&) = delete;
  CommGroup& operator=(const CommGroup&) = delete;
  void end();  // ends the group now; its errors propagate

 private:
  Communicator* comm_;  // null once ended, or when not active
};

}  // namespace ruche
