#include "comm/mpi/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <exception>
#include <string>

#include "comm/mpi/mpi_check.h"
#include "comm/mpi/mpi_world.h"
#include "engine/error.h"

namespace ruche {

struct MpiCommunicator::Comm {
  MPI_Comm comm = MPI_COMM_NULL;
};

namespace {

// The Work of one queued collective: completed by the comm thread, waited on by the caller.
class Completion final : public WorkImpl {
 public:
  bool test() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_ && error_) std::rethrow_exception(error_);
    return done_;
  }
  void wait() override {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [&] { return done_; });
    if (error_) std::rethrow_exception(error_);
  }
  void complete(std::exception_ptr error) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
      error_ = error;
    }
    done_cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

// Polls a pending request. A few yields first (a short collective finishes in microseconds),
// then sleeps doubling from 8 us to 200 us: ranks that share cores keep theirs, and since Open
// MPI progresses only inside MPI calls, the cap keeps long transfers moving.
void wait_for(MPI_Request* request) {
  auto pause = std::chrono::microseconds(4);
  for (int polls = 0;; ++polls) {
    int done = 0;
    MPI_CHECK(MPI_Test(request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    if (polls < 16) {
      std::this_thread::yield();
    } else {
      pause = std::min(pause * 2, std::chrono::microseconds(200));
      std::this_thread::sleep_for(pause);
    }
  }
}

void require_host(const BufferView& view, const char* op) {
  RUCHE_REQUIRE(view.device.is_cpu())
      << op << ": " << view.str()
      << " is not host memory; the MPI communicator takes cpu buffers (device buffers need NCCL)";
  RUCHE_REQUIRE(view.count >= 0 && view.count <= INT_MAX)
      << op << ": " << view.str() << ": expected 0 to " << INT_MAX << " elements";
  RUCHE_REQUIRE(view.data != nullptr || view.count == 0)
      << op << ": " << view.str() << " has no data";
}

// f32 reduces both ways; integer counts (confusion matrices, sample counts) sum exactly.
MPI_Datatype reduction_type(const BufferView& view, ReduceOp op, const char* what) {
  if (view.dtype == DType::f32) return MPI_FLOAT;
  if (op == ReduceOp::sum && view.dtype == DType::i64) return MPI_INT64_T;
  if (op == ReduceOp::sum && view.dtype == DType::i32) return MPI_INT32_T;
  RUCHE_FAIL() << what << ": " << view.str()
               << ": the MPI communicator averages f32 only, and sums f32, i32 and i64";
  return MPI_DATATYPE_NULL;
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
    default:
      break;
  }
  RUCHE_FAIL() << op << ": " << view.str()
               << ": the MPI communicator moves f32, i32, i64 and u8 only";
  return MPI_DATATYPE_NULL;
}

// avg = sum, then divided by the world size.
std::function<void()> divide_by(int size, BufferView view, ReduceOp op) {
  if (op != ReduceOp::avg) return {};
  return [size, view] {
    float* p = static_cast<float*>(view.data);
    const float n = static_cast<float>(size);
    for (std::int64_t i = 0; i < view.count; ++i) p[i] /= n;
  };
}

}  // namespace

struct MpiCommunicator::Task {
  std::function<void(MPI_Comm, MPI_Request*)> start;  // posts the nonblocking collective
  std::function<void()> finish;                       // after completion, may be empty
  std::shared_ptr<Completion> done = std::make_shared<Completion>();
};

MpiCommunicator::MpiCommunicator(const World& world)
    : comm_(std::make_unique<Comm>()), rank_(world.rank()), size_(world.size()) {
  MPI_CHECK(MPI_Comm_dup(world.handles().world, &comm_->comm));
  thread_ = std::thread([this] { run(); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  MPI_Comm_free(&comm_->comm);
}

Work MpiCommunicator::submit(std::unique_ptr<Task> task) {
  Work work(task->done);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
  return work;
}

void MpiCommunicator::run() {
  for (;;) {
    std::unique_ptr<Task> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr error;
    try {
      MPI_Request request = MPI_REQUEST_NULL;
      task->start(comm_->comm, &request);
      wait_for(&request);
      if (task->finish) task->finish();
    } catch (...) {
      error = std::current_exception();
    }
    task->done->complete(error);
  }
}

Work MpiCommunicator::all_reduce(BufferView buffer, ReduceOp op) {
  require_host(buffer, "all_reduce");
  MPI_Datatype type = reduction_type(buffer, op, "all_reduce");
  auto task = std::make_unique<Task>();
  task->start = [buffer, type](MPI_Comm comm, MPI_Request* request) {
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buffer.data, static_cast<int>(buffer.count), type,
                             MPI_SUM, comm, request));
  };
  task->finish = divide_by(size_, buffer, op);
  return submit(std::move(task));
}

Work MpiCommunicator::broadcast(BufferView buffer, int root) {
  require_host(buffer, "broadcast");
  MPI_Datatype type = copy_type(buffer, "broadcast");
  RUCHE_REQUIRE(root >= 0 && root < size_)
      << "broadcast: root " << root << " is not a rank of a world of " << size_;
  auto task = std::make_unique<Task>();
  task->start = [buffer, type, root](MPI_Comm comm, MPI_Request* request) {
    MPI_CHECK(MPI_Ibcast(buffer.data, static_cast<int>(buffer.count), type, root, comm, request));
  };
  return submit(std::move(task));
}

Work MpiCommunicator::all_gather(BufferView send, BufferView recv) {
  require_host(send, "all_gather");
  require_host(recv, "all_gather");
  MPI_Datatype type = copy_type(send, "all_gather");
  RUCHE_REQUIRE(recv.dtype == send.dtype && recv.count == send.count * size_)
      << "all_gather: " << send.str() << " from each of " << size_ << " ranks needs "
      << dtype_name(send.dtype) << "[" << send.count * size_ << "] to receive, got " << recv.str();
  auto task = std::make_unique<Task>();
  task->start = [send, recv, type](MPI_Comm comm, MPI_Request* request) {
    const int n = static_cast<int>(send.count);
    MPI_CHECK(MPI_Iallgather(send.data, n, type, recv.data, n, type, comm, request));
  };
  return submit(std::move(task));
}

Work MpiCommunicator::reduce_scatter(BufferView send, BufferView recv, ReduceOp op) {
  require_host(send, "reduce_scatter");
  require_host(recv, "reduce_scatter");
  MPI_Datatype type = reduction_type(send, op, "reduce_scatter");
  RUCHE_REQUIRE(recv.dtype == send.dtype && send.count == recv.count * size_)
      << "reduce_scatter: " << size_ << " chunks of " << recv.str() << " need "
      << dtype_name(recv.dtype) << "[" << recv.count * size_ << "] to send, got " << send.str();
  auto task = std::make_unique<Task>();
  task->start = [send, recv, type](MPI_Comm comm, MPI_Request* request) {
    MPI_CHECK(MPI_Ireduce_scatter_block(send.data, recv.data, static_cast<int>(recv.count), type,
                                        MPI_SUM, comm, request));
  };
  task->finish = divide_by(size_, recv, op);
  return submit(std::move(task));
}

Work MpiCommunicator::barrier() {
  auto task = std::make_unique<Task>();
  task->start = [](MPI_Comm comm, MPI_Request* request) { MPI_CHECK(MPI_Ibarrier(comm, request)); };
  return submit(std::move(task));
}

}  // namespace ruche
