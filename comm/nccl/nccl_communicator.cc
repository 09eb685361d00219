#include "comm/nccl/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi/collective_info.h"
#include "comm/nccl/nccl_check.h"
#include "comm/nccl/unique_id.h"
#include "comm/segments.h"
#include "comm/watchdog.h"
#include "engine/tensor/half.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/runtime.h"

namespace ruche {

static_assert(sizeof(ncclUniqueId) == sizeof(NcclIdBytes), "NCCL_UNIQUE_ID_BYTES changed");

namespace {

using Clock = std::chrono::steady_clock;

// A CUDA event without timing (the cheap kind): move-only, destroyed with its owner (CUDA frees
// it once it has completed).
class Event {
 public:
  Event() { CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  ~Event() {
    if (event_ != nullptr) cudaEventDestroy(event_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// One collective (or one group of them) in flight: what the poll thread watches and Work waits on.
struct InFlight {
  std::string what;                   // "all_reduce avg f32[1000] (gradient bucket 1 of 3, ...)"
  std::shared_ptr<Event> done;        // recorded on the comm stream after it; set when launched
  std::atomic<bool> finished{false};  // seen complete by the poll thread
  CollectiveTimes times;              // as the poll thread saw it: valid once finished
};

ncclDataType_t nccl_type(const BufferView& view, const char* op) {
  switch (view.dtype) {
    case DType::f32:
      return ncclFloat32;
    case DType::f16:
      return ncclFloat16;
    case DType::bf16:
      return ncclBfloat16;
    case DType::i32:
      return ncclInt32;
    case DType::i64:
      return ncclInt64;
    case DType::u8:
      return ncclUint8;
  }
  RUCHE_FAIL() << op << ": " << view.str() << ": NCCL does not move this dtype";
  return ncclFloat32;
}

bool is_float(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16;
}

ncclRedOp_t nccl_op(const BufferView& view, ReduceOp op, const char* what) {
  RUCHE_REQUIRE(op == ReduceOp::sum || is_float(view.dtype))
      << what << ": " << view.str()
      << ": the NCCL communicator sums and averages f32, f16 and bf16, and sums i32 and i64";
  RUCHE_REQUIRE(view.dtype != DType::u8) << what << ": " << view.str() << ": u8 does not reduce";
  return op == ReduceOp::avg ? ncclAvg : ncclSum;
}

CollectiveInfo info_of(CollectiveKind kind, const BufferView& view, std::int32_t arg,
                       std::string_view label) {
  CollectiveInfo info;
  info.kind = kind;
  info.dtype = view.dtype;
  info.count = view.count;
  info.arg = arg;
  info.label = label;
  return info;
}

class NcclWork final : public WorkImpl {
 public:
  NcclWork(std::shared_ptr<InFlight> flight, cudaStream_t compute, bool host_wait,
           std::shared_ptr<Watchdog> watchdog)
      : flight_(std::move(flight)),
        compute_(compute),
        host_wait_(host_wait),
        watchdog_(std::move(watchdog)) {}

  bool test() override {
    if (flight_->finished) return true;
    if (!flight_->done) return false;  // inside an open group: launched at end_group()
    const cudaError_t status = cudaEventQuery(flight_->done->get());
    if (status == cudaErrorNotReady) return false;
    CUDA_CHECK(status);
    return true;
  }
  // The compute stream waits: the kernels queued after this see the result, the host goes on.
  // host_wait: polls the event (sleeping), so a hang still meets the watchdog.
  void wait() override {
    RUCHE_CHECK(flight_->done != nullptr)
        << "NCCL: wait() on " << flight_->what << " inside an open group: end_group() first";
    if (!host_wait_) {
      CUDA_CHECK(cudaStreamWaitEvent(compute_, flight_->done->get(), 0));
      return;
    }
    auto sleep = std::chrono::microseconds(20);
    while (!test()) {
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
      watchdog_->check_stuck();
    }
  }
  CollectiveTimes times() const override {
    return flight_->finished ? flight_->times : CollectiveTimes{};
  }

 private:
  const std::shared_ptr<InFlight> flight_;
  const cudaStream_t compute_;
  const bool host_wait_;
  const std::shared_ptr<Watchdog> watchdog_;
};

}  // namespace

struct NcclCommunicator::State {
  const World& world;
  const CommOptions options;
  const NcclOptions nccl_options;
  int device = 0;
  ncclComm_t comm = nullptr;
  ncclComm_t node = nullptr, leaders = nullptr;  // hierarchical_allreduce; leaders: local rank 0
  // The hierarchical average: each rank's input times 1 / size, summed in the node reduce.
  ncclRedOp_t scaled_f32{}, scaled_f16{}, scaled_bf16{};
  cudaStream_t stream = nullptr;
  cudaStream_t compute = nullptr;
  std::uint64_t submitted = 0;
  int group_depth = 0;
  std::vector<std::shared_ptr<InFlight>> grouped;  // launched together at the group's end

  std::shared_ptr<Heartbeat> heartbeat;  // with options.run_dir: the MPI communicator's too
  std::shared_ptr<Watchdog> watchdog;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::shared_ptr<InFlight>> in_flight;  // in launch order
  bool stopping = false;
  std::thread poller;

  State(const World& w, const CommOptions& o, const NcclOptions& n)
      : world(w),
        options(o),
        nccl_options(n) {}

  // Prints `line`, aborts the NCCL communicators so no kernel waits on a dead peer, ends the job.
  [[noreturn]] void fail(const std::string& line) {
    if (heartbeat) heartbeat->write_abort(line, kExitCollectiveFailed);  // the watchdog did already
    std::fprintf(stderr, "%s\n", line.c_str());
    for (ncclComm_t c : {leaders, node, comm}) {
      if (c != nullptr) ncclCommAbort(c);
    }
    world.abort(kExitCollectiveFailed);
  }

  // ncclSuccess, or the first asynchronous error of any of our communicators.
  ncclResult_t async_error(ncclComm_t* which) {
    for (ncclComm_t c : {comm, node, leaders}) {
      if (c == nullptr) continue;
      ncclResult_t result = ncclSuccess;
      if (ncclCommGetAsyncError(c, &result) != ncclSuccess) result = ncclInternalError;
      if (result != ncclSuccess && result != ncclInProgress) {
        *which = c;
        return result;
      }
    }
    return ncclSuccess;
  }

  // The poll thread: retires collectives in order as their events complete, keeps the oldest
  // one under the watchdog, and turns any failure into the job's end.
  void poll() {
    cudaSetDevice(device);
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      wake.wait(lock, [&] { return stopping || !in_flight.empty(); });
      if (in_flight.empty()) return;
      std::shared_ptr<InFlight> front = in_flight.front();
      lock.unlock();
      const cudaError_t status = cudaEventQuery(front->done->get());
      if (status == cudaSuccess) {
        front->times.finished = Clock::now();
        front->finished = true;
        watchdog->stop();
        if (heartbeat) heartbeat->completed(front->what);
        lock.lock();
        in_flight.pop_front();
        if (!in_flight.empty()) {
          in_flight.front()->times.started = Clock::now();
          watchdog->start(in_flight.front()->what);
        }
        continue;
      }
      const std::string who = "ruche: rank " + std::to_string(world.rank()) + ": NCCL: ";
      if (status != cudaErrorNotReady) {
        fail(who + front->what + " failed on the device: " + cudaGetErrorName(status) + ": " +
             cudaGetErrorString(status) + "; aborting the job");
      }
      ncclComm_t which = nullptr;
      const ncclResult_t error = async_error(&which);
      if (error != ncclSuccess) {
        fail(who + front->what + ": asynchronous error: " + ncclGetErrorString(error) + " (" +
             ncclGetLastError(which) + "); aborting the job");
      }
      watchdog->check();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      lock.lock();
    }
  }

  // Hands launched collectives to the poll thread.
  void watch(std::vector<std::shared_ptr<InFlight>> launched) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (auto& f : launched) {
        if (in_flight.empty()) {
          f->times.started = Clock::now();
          watchdog->start(f->what);
        }
        in_flight.push_back(std::move(f));
      }
    }
    wake.notify_one();
  }

  // Before a collective: the comm stream waits for the kernels queued on the compute stream.
  void follow_compute() {
    Event ready;
    CUDA_CHECK(cudaEventRecord(ready.get(), compute));
    CUDA_CHECK(cudaStreamWaitEvent(stream, ready.get(), 0));
  }

  // Runs `enqueue` (the NCCL calls of one collective) on the comm stream and returns its Work.
  template <typename Enqueue>
  Work launch(const CollectiveInfo& base, Enqueue enqueue) {
    CollectiveInfo info = base;
    info.seq = ++submitted;
    auto flight = std::make_shared<InFlight>();
    flight->what = info.str();
    CUDA_CHECK(cudaSetDevice(device));
    follow_compute();
    enqueue();
    if (group_depth > 0) {
      grouped.push_back(flight);
    } else {
      flight->done = std::make_shared<Event>();
      CUDA_CHECK(cudaEventRecord(flight->done->get(), stream));
      watch({flight});
    }
    return Work(std::make_shared<NcclWork>(flight, compute, nccl_options.host_wait, watchdog));
  }

  void require_device(const BufferView& view, const char* op) const {
    RUCHE_REQUIRE(view.device.is_cuda() && view.device.index == device)
        << op << ": " << view.str() << " is not memory of cuda:" << device
        << "; the NCCL communicator takes this rank's device buffers (host buffers go to MPI)";
    RUCHE_REQUIRE(view.data != nullptr || view.count == 0)
        << op << ": " << view.str() << " has no data";
  }
};

NcclCommunicator::NcclCommunicator(const World& world, Communicator& host, int device,
                                   const CommOptions& options, const NcclOptions& nccl)
    : state_(std::make_unique<State>(world, options, nccl)),
      host_(host),
      rank_(world.rank()),
      size_(world.size()) {
  RUCHE_CHECK(host.rank() == rank_ && host.size() == size_)
      << "NcclCommunicator: the host communicator is rank " << host.rank() << " of " << host.size()
      << ", the World rank " << rank_ << " of " << size_;
  State& s = *state_;
  s.device = device;
  s.compute = static_cast<cudaStream_t>(cuda::compute_stream());
  s.heartbeat = Heartbeat::of(options.run_dir, rank_, size_);
  s.watchdog = std::make_shared<Watchdog>(
      rank_, options.timeout_seconds, [&s](const std::string& line) { s.fail(line); }, s.heartbeat);
  CUDA_CHECK(cudaSetDevice(device));

  NcclIdBytes id{};
  if (rank_ == 0) {
    ncclUniqueId made;
    NCCL_CHECK(ncclGetUniqueId(&made));
    std::memcpy(id.data(), &made, sizeof made);
  }
  id = share_from_rank0(host, id, "the NCCL unique id");
  ncclUniqueId unique;
  std::memcpy(&unique, id.data(), sizeof unique);
  NCCL_CHECK(ncclCommInitRank(&s.comm, size_, unique, rank_));
  if (options.hierarchical_allreduce) {
    NCCL_CHECK(ncclCommSplit(s.comm, world.node(), rank_, &s.node, nullptr));
    NCCL_CHECK(ncclCommSplit(s.comm, world.local_rank() == 0 ? 0 : NCCL_SPLIT_NOCOLOR, rank_,
                             &s.leaders, nullptr));
    float f32 = 1.0f / static_cast<float>(size_);
    std::uint16_t f16 = half::f16_from_f32(f32), bf16 = half::bf16_from_f32(f32);
    NCCL_CHECK(ncclRedOpCreatePreMulSum(&s.scaled_f32, &f32, ncclFloat32, ncclScalarHostImmediate,
                                        s.node));
    NCCL_CHECK(ncclRedOpCreatePreMulSum(&s.scaled_f16, &f16, ncclFloat16, ncclScalarHostImmediate,
                                        s.node));
    NCCL_CHECK(ncclRedOpCreatePreMulSum(&s.scaled_bf16, &bf16, ncclBfloat16,
                                        ncclScalarHostImmediate, s.node));
  }
  CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  s.poller = std::thread([&s] { s.poll(); });
}

NcclCommunicator::~NcclCommunicator() {
  State& s = *state_;
  cudaSetDevice(s.device);
  cudaStreamSynchronize(s.stream);  // a hang here meets the poll thread's watchdog
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stopping = true;
  }
  s.wake.notify_one();
  s.poller.join();
  if (s.node != nullptr) {
    ncclRedOpDestroy(s.scaled_f32, s.node);
    ncclRedOpDestroy(s.scaled_f16, s.node);
    ncclRedOpDestroy(s.scaled_bf16, s.node);
  }
  for (ncclComm_t c : {s.leaders, s.node, s.comm}) {
    if (c != nullptr) ncclCommDestroy(c);
  }
  cudaStreamDestroy(s.stream);
}

Work NcclCommunicator::do_all_reduce(BufferView buffer, ReduceOp op, std::string_view label) {
  State& s = *state_;
  s.require_device(buffer, "all_reduce");
  const ncclDataType_t type = nccl_type(buffer, "all_reduce");
  const ncclRedOp_t flat_op = nccl_op(buffer, op, "all_reduce");
  const auto info =
      info_of(CollectiveKind::all_reduce, buffer, static_cast<std::int32_t>(op), label);
  const auto count = static_cast<std::size_t>(buffer.count);
  if (!s.options.hierarchical_allreduce) {
    return s.launch(info, [&] {
      NCCL_CHECK(ncclAllReduce(buffer.data, buffer.data, count, type, flat_op, s.comm, s.stream));
    });
  }
  // Reduce to the node leader, all-reduce across leaders, broadcast in the node: three calls in
  // stream order (never one group: their order is the algorithm). avg scales each input first.
  ncclRedOp_t node_op = ncclSum;
  if (op == ReduceOp::avg) {
    node_op = buffer.dtype == DType::f32   ? s.scaled_f32
              : buffer.dtype == DType::f16 ? s.scaled_f16
                                           : s.scaled_bf16;
  }
  return s.launch(info, [&] {
    NCCL_CHECK(ncclReduce(buffer.data, buffer.data, count, type, node_op, 0, s.node, s.stream));
    if (s.leaders != nullptr) {
      NCCL_CHECK(
          ncclAllReduce(buffer.data, buffer.data, count, type, ncclSum, s.leaders, s.stream));
    }
    NCCL_CHECK(ncclBroadcast(buffer.data, buffer.data, count, type, 0, s.node, s.stream));
  });
}

Work NcclCommunicator::do_broadcast(BufferView buffer, int root, std::string_view label) {
  State& s = *state_;
  s.require_device(buffer, "broadcast");
  const ncclDataType_t type = nccl_type(buffer, "broadcast");
  RUCHE_REQUIRE(root >= 0 && root < size_)
      << "broadcast: root " << root << " is not a rank of a world of " << size_;
  return s.launch(info_of(CollectiveKind::broadcast, buffer, root, label), [&] {
    NCCL_CHECK(ncclBroadcast(buffer.data, buffer.data, static_cast<std::size_t>(buffer.count), type,
                             root, s.comm, s.stream));
  });
}

Work NcclCommunicator::do_all_gather(BufferView send, BufferView recv, std::string_view label) {
  State& s = *state_;
  s.require_device(send, "all_gather");
  s.require_device(recv, "all_gather");
  const ncclDataType_t type = nccl_type(send, "all_gather");
  RUCHE_REQUIRE(recv.dtype == send.dtype && recv.count == send.count * size_)
      << "all_gather: " << send.str() << " from each of " << size_ << " ranks needs "
      << dtype_name(send.dtype) << "[" << send.count * size_ << "] to receive, got " << recv.str();
  return s.launch(info_of(CollectiveKind::all_gather, send, 0, label), [&] {
    NCCL_CHECK(ncclAllGather(send.data, recv.data, static_cast<std::size_t>(send.count), type,
                             s.comm, s.stream));
  });
}

Work NcclCommunicator::do_reduce_scatter(BufferView send, BufferView recv, ReduceOp op,
                                         std::string_view label) {
  State& s = *state_;
  s.require_device(send, "reduce_scatter");
  s.require_device(recv, "reduce_scatter");
  const ncclDataType_t type = nccl_type(send, "reduce_scatter");
  const ncclRedOp_t nop = nccl_op(send, op, "reduce_scatter");
  RUCHE_REQUIRE(recv.dtype == send.dtype && send.count == recv.count * size_)
      << "reduce_scatter: " << size_ << " chunks of " << recv.str() << " need "
      << dtype_name(recv.dtype) << "[" << recv.count * size_ << "] to send, got " << send.str();
  const auto info =
      info_of(CollectiveKind::reduce_scatter, recv, static_cast<std::int32_t>(op), label);
  return s.launch(info, [&] {
    NCCL_CHECK(ncclReduceScatter(send.data, recv.data, static_cast<std::size_t>(recv.count), type,
                                 nop, s.comm, s.stream));
  });
}

// One reduce per rank's chunk, rooted at that rank, in one NCCL group (nccl_communicator.h says
// why not padded chunks). Empty chunks are skipped, the same ones on every rank.
Work NcclCommunicator::do_reduce_scatter_v(BufferView send, BufferView recv,
                                           std::vector<std::int64_t> counts, ReduceOp op,
                                           std::string_view label) {
  State& s = *state_;
  s.require_device(send, "reduce_scatter_v");
  s.require_device(recv, "reduce_scatter_v");
  const ncclDataType_t type = nccl_type(send, "reduce_scatter_v");
  const ncclRedOp_t nop = nccl_op(send, op, "reduce_scatter_v");
  const std::vector<Segment> segments = segments_of(counts, size_, send.count, "reduce_scatter_v");
  RUCHE_REQUIRE(recv.dtype == send.dtype && recv.count == counts[static_cast<std::size_t>(rank_)])
      << "reduce_scatter_v: rank " << rank_ << " receives " << dtype_name(send.dtype) << "["
      << counts[static_cast<std::size_t>(rank_)] << "], got " << recv.str();
  const std::size_t element = dtype_size(send.dtype);
  const auto info =
      info_of(CollectiveKind::reduce_scatter_v, send, static_cast<std::int32_t>(op), label);
  return s.launch(info, [&] {
    NCCL_CHECK(ncclGroupStart());
    for (const Segment& g : segments) {
      char* chunk = static_cast<char*>(send.data) + g.offset * element;
      // recvbuff is written at the root only; elsewhere any valid pointer (this rank's recv may
      // be empty and null).
      void* into = g.rank == rank_ ? recv.data : chunk;
      NCCL_CHECK(ncclReduce(chunk, into, static_cast<std::size_t>(g.count), type, nop, g.rank,
                            s.comm, s.stream));
    }
    NCCL_CHECK(ncclGroupEnd());
  });
}

// In place: each rank's chunk broadcast from it, all in one NCCL group.
Work NcclCommunicator::do_all_gather_v(BufferView buffer, std::vector<std::int64_t> counts,
                                       std::string_view label) {
  State& s = *state_;
  s.require_device(buffer, "all_gather_v");
  const ncclDataType_t type = nccl_type(buffer, "all_gather_v");
  const std::vector<Segment> segments = segments_of(counts, size_, buffer.count, "all_gather_v");
  const std::size_t element = dtype_size(buffer.dtype);
  return s.launch(info_of(CollectiveKind::all_gather_v, buffer, 0, label), [&] {
    NCCL_CHECK(ncclGroupStart());
    for (const Segment& g : segments) {
      char* chunk = static_cast<char*>(buffer.data) + g.offset * element;
      NCCL_CHECK(ncclBroadcast(chunk, chunk, static_cast<std::size_t>(g.count), type, g.rank,
                               s.comm, s.stream));
    }
    NCCL_CHECK(ncclGroupEnd());
  });
}

Work NcclCommunicator::do_barrier(std::string_view label) { return host_.barrier(label); }

// Hierarchical all-reduces are three dependent calls, which one NCCL group would run together:
// with hierarchical_allreduce, groups are off and collectives launch one by one.
void NcclCommunicator::do_begin_group() {
  State& s = *state_;
  if (s.options.hierarchical_allreduce) return;
  if (s.group_depth++ == 0) NCCL_CHECK(ncclGroupStart());
}

void NcclCommunicator::do_end_group() {
  State& s = *state_;
  if (s.options.hierarchical_allreduce) return;
  RUCHE_CHECK(s.group_depth > 0) << "NcclCommunicator: end_group() without begin_group()";
  if (--s.group_depth > 0) return;
  NCCL_CHECK(ncclGroupEnd());
  if (s.grouped.empty()) return;
  // One event after the group's kernels stands for every collective in it.
  auto done = std::make_shared<Event>();
  CUDA_CHECK(cudaEventRecord(done->get(), s.stream));
  for (auto& f : s.grouped) f->done = done;
  s.watch(std::move(s.grouped));
  s.grouped.clear();
}

std::string nccl_version() {
  // NCCL >= 2.9 encodes major * 10000 + minor * 100 + patch, as NCCL_VERSION_CODE does.
  auto triple = [](int code) {
    return std::to_string(code / 10000) + "." + std::to_string(code % 10000 / 100) + "." +
           std::to_string(code % 100);
  };
  int loaded = 0;
  const std::string runtime = ncclGetVersion(&loaded) == ncclSuccess ? triple(loaded) : "unknown";
  return "NCCL " + runtime + " (built " + triple(NCCL_VERSION_CODE) + ")";
}

}  // namespace ruche
