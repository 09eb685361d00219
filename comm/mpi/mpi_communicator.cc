#include "comm/mpi/mpi_communicator.h"

#include <mpi.h>
#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "engine/tensor/half.h"
#include "comm/mpi/collective_info.h"
#include "comm/mpi/hierarchical.h"
#include "comm/mpi/mpi_check.h"
#include "comm/mpi/mpi_world.h"
#include "comm/mpi/poll.h"
#include "engine/error.h"

namespace ruche {

struct MpiCommunicator::Comm {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Op f16_sum = MPI_OP_NULL, bf16_sum = MPI_OP_NULL;  // MPI has no 16-bit float type
  NodeComms nodes;                                       // with hierarchical_allreduce only
};

namespace {

// MPI_User_function's signature: len is not const there.
// NOLINTNEXTLINE(readability-non-const-parameter)
void f16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  half::add(DType::f16, static_cast<const std::uint16_t*>(in), static_cast<std::uint16_t*>(inout),
            *len);
}
// NOLINTNEXTLINE(readability-non-const-parameter): MPI_User_function's signature
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  half::add(DType::bf16, static_cast<const std::uint16_t*>(in), static_cast<std::uint16_t*>(inout),
            *len);
}

// The Work of one queued collective: completed by the comm thread, waited on by the caller.
class Completion final : public WorkImpl {
 public:
  explicit Completion(std::shared_ptr<Watchdog> watchdog) : watchdog_(std::move(watchdog)) {}
  bool test() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_ && error_) std::rethrow_exception(error_);
    return done_;
  }
  // With a watchdog, wakes now and then: if the comm thread is stuck inside a call, the waiter
  // is the one that ends the job.
  void wait() override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!watchdog_->enabled()) {
      done_cv_.wait(lock, [&] { return done_; });
    } else {
      const std::chrono::duration<double> slice(std::min(1.0, watchdog_->timeout_seconds() / 4));
      while (!done_cv_.wait_for(lock, slice, [&] { return done_; })) {
        lock.unlock();
        watchdog_->check_stuck();
        lock.lock();
      }
    }
    if (error_) std::rethrow_exception(error_);
  }
  void complete(std::exception_ptr error, CollectiveTimes times) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
      error_ = std::move(error);
      times_ = times;
    }
    done_cv_.notify_all();
  }
  CollectiveTimes times() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return times_;
  }

 private:
  const std::shared_ptr<Watchdog> watchdog_;
  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::exception_ptr error_;
  CollectiveTimes times_;
};

// From this size on an all-reduce runs as a blocking MPI_Allreduce once every rank has arrived:
// Open MPI's nonblocking all-reduce (libnbc) takes 1.5 to 2x as long for large buffers
// (benchmarks/results/allreduce-*), and waiting for the peers first, with the passive poll,
// keeps the blocking call's spin as short as the transfer itself.
constexpr std::size_t kBlockingAllReduceBytes = 256 << 10;

void require_host(const BufferView& view, const char* op) {
  RUCHE_REQUIRE(view.device.is_cpu())
      << op << ": " << view.str()
      << " is not host memory; the MPI communicator takes cpu buffers (device buffers need NCCL)";
  RUCHE_REQUIRE(view.count >= 0 && view.count <= INT_MAX)
      << op << ": " << view.str() << ": expected 0 to " << INT_MAX << " elements";
  RUCHE_REQUIRE(view.data != nullptr || view.count == 0)
      << op << ": " << view.str() << " has no data";
}

struct Reduction {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Op op = MPI_SUM;
};

// Floats reduce both ways (16-bit ones with our sum); integer counts (confusion matrices, sample
// counts) sum exactly.
Reduction reduction_for(const BufferView& view, ReduceOp op, MPI_Op f16, MPI_Op bf16,
                        const char* what) {
  switch (view.dtype) {
    case DType::f32:
      return {MPI_FLOAT, MPI_SUM};
    case DType::f16:
      return {MPI_UINT16_T, f16};
    case DType::bf16:
      return {MPI_UINT16_T, bf16};
    case DType::i64:
      if (op == ReduceOp::sum) return {MPI_INT64_T, MPI_SUM};
      break;
    case DType::i32:
      if (op == ReduceOp::sum) return {MPI_INT32_T, MPI_SUM};
      break;
    default:
      break;
  }
  RUCHE_FAIL()
      << what << ": " << view.str()
      << ": the MPI communicator sums and averages f32, f16 and bf16, and sums i32 and i64";
  return {};
}

MPI_Datatype copy_type(const BufferView& view, const char* op) {
  switch (view.dtype) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    case DType::u8:
      return MPI_UINT8_T;
    case DType::f16:
    case DType::bf16:
      return MPI_UINT16_T;
  }
  RUCHE_FAIL() << op << ": " << view.str() << ": the MPI communicator does not move this dtype";
  return MPI_DATATYPE_NULL;
}

// count elements at data divided by the world size (16-bit values in f32, rounded once). For a
// power-of-two size f32 is multiplied by 1/size instead: x * 2^-k and x / 2^k are both the
// correctly rounded x / 2^k, so the bits are the same, and a multiply is cheaper than a divide.
void divide(void* data, DType dtype, std::int64_t count, int size) {
  const float n = static_cast<float>(size);
  if (dtype == DType::f32) {
    float* p = static_cast<float*>(data);
    if ((size & (size - 1)) == 0) {
      const float inverse = 1.0f / n;
      for (std::int64_t i = 0; i < count; ++i) p[i] *= inverse;
    } else {
      for (std::int64_t i = 0; i < count; ++i) p[i] /= n;
    }
    return;
  }
  auto* p = static_cast<std::uint16_t*>(data);
  const bool bf16 = dtype == DType::bf16;
  for (std::int64_t i = 0; i < count; ++i) {
    p[i] = bf16 ? half::bf16_from_f32(half::bf16_to_f32(p[i]) / n)
                : half::f16_from_f32(half::f16_to_f32(p[i]) / n);
  }
}

// avg = sum, then divided by the world size.
std::function<void()> divide_by(int size, BufferView view, ReduceOp op) {
  if (op != ReduceOp::avg) return {};
  return [size, view] { divide(view.data, view.dtype, view.count, size); };
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

}  // namespace

struct MpiCommunicator::Task {
  CollectiveInfo info;                                 // seq set by submit
  std::function<void(MPI_Comm, MPI_Request*)> start;   // posts the nonblocking collective
  std::function<void(MPI_Comm)> blocking;              // instead of start: after a barrier
  std::function<void()> finish;                        // after completion, may be empty
  std::function<void(const Comm&, Watchdog*)> staged;  // instead of both: several polled stages
  std::shared_ptr<Completion> done;                    // set by submit
};

MpiCommunicator::MpiCommunicator(const World& world, const CommOptions& options)
    : comm_(std::make_unique<Comm>()),
      world_(world),
      options_(options),
      rank_(world.rank()),
      size_(world.size()),
      heartbeat_(Heartbeat::of(options.run_dir, world.rank(), world.size())),
      watchdog_(std::make_shared<Watchdog>(
          world.rank(), options.timeout_seconds,
          [&world](const std::string& line) {
            std::fprintf(stderr, "%s\n", line.c_str());
            world.abort(kExitCollectiveFailed);
          },
          heartbeat_)) {
  MPI_CHECK(MPI_Comm_dup(world.handles().world, &comm_->comm));
  MPI_CHECK(MPI_Op_create(&f16_sum, /*commute=*/1, &comm_->f16_sum));
  MPI_CHECK(MPI_Op_create(&bf16_sum, /*commute=*/1, &comm_->bf16_sum));
  if (options.hierarchical_allreduce) {
    comm_->nodes = NodeComms::make(world.handles().world, world.handles().local);
  }
  thread_ = std::thread([this] { run(); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  MPI_Op_free(&comm_->f16_sum);
  MPI_Op_free(&comm_->bf16_sum);
  comm_->nodes.free();
  MPI_Comm_free(&comm_->comm);
}

Work MpiCommunicator::submit(std::unique_ptr<Task> task) {
  task->done = std::make_shared<Completion>(watchdog_);
  Work work(task->done);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task->info.seq = ++submitted_;
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
  return work;
}

// Every rank all-gathers the description of the collective it is about to run. On a mismatch
// rank 0 prints the line (all ranks hold the same table) and ends the job; the others give it
// a moment, so that the line is printed once, then end it themselves.
void MpiCommunicator::check_same_on_all_ranks(const Task& task) {
  const CollectiveWire mine = to_wire(task.info);
  std::vector<CollectiveWire> all(static_cast<std::size_t>(size_));
  MPI_Request request = MPI_REQUEST_NULL;
  MPI_CHECK(MPI_Iallgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE,
                           comm_->comm, &request));
  wait_for(&request, watchdog_.get());
  std::vector<CollectiveInfo> by_rank;
  by_rank.reserve(all.size());
  for (const CollectiveWire& w : all) by_rank.push_back(from_wire(w));
  const std::string line = mismatch_line(by_rank);
  if (line.empty()) return;
  watchdog_->stop();
  if (heartbeat_) heartbeat_->write_abort(line, kExitCollectiveFailed);
  if (rank_ == 0) {
    std::fprintf(stderr, "%s\n", line.c_str());
  } else {
    std::this_thread::sleep_for(std::chrono::seconds(5));
  }
  world_.abort(kExitCollectiveFailed);
}

void MpiCommunicator::run() {
  prctl(PR_SET_TIMERSLACK, 1UL);  // short sleeps stay short (the default slack is 50 us)
  for (;;) {
    std::unique_ptr<Task> next;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    const Task& task = *next;
    std::exception_ptr error;
    CollectiveTimes times;
    times.started = std::chrono::steady_clock::now();
    std::string what;
    if (watchdog_->enabled() || heartbeat_) what = task.info.str();
    watchdog_->start(what);
    try {
      if (options_.check_collectives) check_same_on_all_ranks(task);
      MPI_Request request = MPI_REQUEST_NULL;
      if (task.staged) {
        task.staged(*comm_, watchdog_.get());
      } else if (task.blocking) {
        MPI_CHECK(MPI_Ibarrier(comm_->comm, &request));  // every rank is here: no long spin
        wait_for(&request, watchdog_.get());
        task.blocking(comm_->comm);
      } else {
        task.start(comm_->comm, &request);
        wait_for(&request, watchdog_.get());
      }
      if (task.finish) task.finish();
    } catch (...) {
      error = std::current_exception();
    }
    watchdog_->stop();
    times.finished = std::chrono::steady_clock::now();
    if (heartbeat_ && !error) heartbeat_->completed(what);
    task.done->complete(error, times);
  }
}

Work MpiCommunicator::do_all_reduce(BufferView buffer, ReduceOp op, std::string_view label) {
  require_host(buffer, "all_reduce");
  const Reduction r = reduction_for(buffer, op, comm_->f16_sum, comm_->bf16_sum, "all_reduce");
  auto task = std::make_unique<Task>();
  task->info = info_of(CollectiveKind::all_reduce, buffer, static_cast<std::int32_t>(op), label);
  if (options_.hierarchical_allreduce) {
    task->staged = [buffer, r](const Comm& comm, Watchdog* watchdog) {
      hierarchical_all_reduce(buffer.data, static_cast<int>(buffer.count), r.type, r.op, comm.nodes,
                              watchdog);
    };
  } else if (buffer.nbytes() >= kBlockingAllReduceBytes) {
    // One call for the whole buffer, avg divided after it. Chunking an avg into 4 MiB calls,
    // each divided while in cache, was tried: on the loaded 2-core machine every chunk's
    // synchronisation cost more than the pass it saved (256 MiB avg 2.2x the sum, was 1.04x).
    task->blocking = [buffer, r](MPI_Comm comm) {
      MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buffer.data, static_cast<int>(buffer.count), r.type,
                              r.op, comm));
    };
  } else {
    task->start = [buffer, r](MPI_Comm comm, MPI_Request* request) {
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buffer.data, static_cast<int>(buffer.count), r.type,
                               r.op, comm, request));
    };
  }
  task->finish = divide_by(size_, buffer, op);
  return submit(std::move(task));
}

Work MpiCommunicator::do_broadcast(BufferView buffer, int root, std::string_view label) {
  require_host(buffer, "broadcast");
  MPI_Datatype type = copy_type(buffer, "broadcast");
  RUCHE_REQUIRE(root >= 0 && root < size_)
      << "broadcast: root " << root << " is not a rank of a world of " << size_;
  auto task = std::make_unique<Task>();
  task->info = info_of(CollectiveKind::broadcast, buffer, root, label);
  task->start = [buffer, type, root](MPI_Comm comm, MPI_Request* request) {
    MPI_CHECK(MPI_Ibcast(buffer.data, static_cast<int>(buffer.count), type, root, comm, request));
  };
  return submit(std::move(task));
}

Work MpiCommunicator::do_all_gather(BufferView send, BufferView recv, std::string_view label) {
  require_host(send, "all_gather");
  require_host(recv, "all_gather");
  MPI_Datatype type = copy_type(send, "all_gather");
  RUCHE_REQUIRE(recv.dtype == send.dtype && recv.count == send.count * size_)
      << "all_gather: " << send.str() << " from each of " << size_ << " ranks needs "
      << dtype_name(send.dtype) << "[" << send.count * size_ << "] to receive, got " << recv.str();
  auto task = std::make_unique<Task>();
  task->info = info_of(CollectiveKind::all_gather, send, 0, label);
  task->start = [send, recv, type](MPI_Comm comm, MPI_Request* request) {
    const int n = static_cast<int>(send.count);
    MPI_CHECK(MPI_Iallgather(send.data, n, type, recv.data, n, type, comm, request));
  };
  return submit(std::move(task));
}

Work MpiCommunicator::do_reduce_scatter(BufferView send, BufferView recv, ReduceOp op,
                                        std::string_view label) {
  require_host(send, "reduce_scatter");
  require_host(recv, "reduce_scatter");
  const Reduction r = reduction_for(send, op, comm_->f16_sum, comm_->bf16_sum, "reduce_scatter");
  RUCHE_REQUIRE(recv.dtype == send.dtype && send.count == recv.count * size_)
      << "reduce_scatter: " << size_ << " chunks of " << recv.str() << " need "
      << dtype_name(recv.dtype) << "[" << recv.count * size_ << "] to send, got " << send.str();
  auto task = std::make_unique<Task>();
  task->info = info_of(CollectiveKind::reduce_scatter, recv, static_cast<std::int32_t>(op), label);
  task->start = [send, recv, r](MPI_Comm comm, MPI_Request* request) {
    MPI_CHECK(MPI_Ireduce_scatter_block(send.data, recv.data, static_cast<int>(recv.count), r.type,
                                        r.op, comm, request));
  };
  task->finish = divide_by(size_, recv, op);
  return submit(std::move(task));
}

Work MpiCommunicator::do_barrier(std::string_view label) {
  auto task = std::make_unique<Task>();
  task->info.kind = CollectiveKind::barrier;
  task->info.label = label;
  task->start = [](MPI_Comm comm, MPI_Request* request) { MPI_CHECK(MPI_Ibarrier(comm, request)); };
  return submit(std::move(task));
}

namespace {

// MPI's int counts and displacements of `counts` chunks laid end to end; their sum must be
// `total` (the buffer's count).
void mpi_counts(const std::vector<std::int64_t>& counts, int size, std::int64_t total,
                const char* op, std::vector<int>& ints, std::vector<int>& displs) {
  RUCHE_REQUIRE(static_cast<int>(counts.size()) == size)
      << op << ": " << counts.size() << " counts for a world of " << size;
  std::int64_t at = 0;
  for (const std::int64_t c : counts) {
    RUCHE_REQUIRE(c >= 0 && at + c <= INT_MAX) << op << ": bad count " << c << " at element " << at;
    ints.push_back(static_cast<int>(c));
    displs.push_back(static_cast<int>(at));
    at += c;
  }
  RUCHE_REQUIRE(at == total) << op << ": counts sum to " << at << " elements, the buffer holds "
                             << total;
}

}  // namespace

Work MpiCommunicator::do_reduce_scatter_v(BufferView send, BufferView recv,
                                          std::vector<std::int64_t> counts, ReduceOp op,
                                          std::string_view label) {
  require_host(send, "reduce_scatter_v");
  require_host(recv, "reduce_scatter_v");
  const Reduction r = reduction_for(send, op, comm_->f16_sum, comm_->bf16_sum, "reduce_scatter_v");
  auto ints = std::make_shared<std::vector<int>>();  // alive until the request completes
  std::vector<int> displs;
  mpi_counts(counts, size_, send.count, "reduce_scatter_v", *ints, displs);
  RUCHE_REQUIRE(recv.dtype == send.dtype && recv.count == counts[static_cast<std::size_t>(rank_)])
      << "reduce_scatter_v: rank " << rank_ << " receives " << dtype_name(send.dtype) << "["
      << counts[static_cast<std::size_t>(rank_)] << "], got " << recv.str();
  auto task = std::make_unique<Task>();
  task->info =
      info_of(CollectiveKind::reduce_scatter_v, send, static_cast<std::int32_t>(op), label);
  task->start = [send, recv, r, ints](MPI_Comm comm, MPI_Request* request) {
    MPI_CHECK(MPI_Ireduce_scatter(send.data, recv.data, ints->data(), r.type, r.op, comm, request));
  };
  task->finish = divide_by(size_, recv, op);
  return submit(std::move(task));
}

Work MpiCommunicator::do_all_gather_v(BufferView buffer, std::vector<std::int64_t> counts,
                                      std::string_view label) {
  require_host(buffer, "all_gather_v");
  MPI_Datatype type = copy_type(buffer, "all_gather_v");
  auto ints = std::make_shared<std::vector<int>>();
  auto displs = std::make_shared<std::vector<int>>();
  mpi_counts(counts, size_, buffer.count, "all_gather_v", *ints, *displs);
  auto task = std::make_unique<Task>();
  task->info = info_of(CollectiveKind::all_gather_v, buffer, 0, label);
  task->start = [buffer, type, ints, displs](MPI_Comm comm, MPI_Request* request) {
    MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer.data, ints->data(),
                              displs->data(), type, comm, request));
  };
  return submit(std::move(task));
}

}  // namespace ruche
