#include "comm/communicator.h"

#include <utility>

#include "engine/error.h"

namespace ruche {

BufferView BufferView::of(const Tensor& tensor) {
  RUCHE_REQUIRE(tensor.defined()) << "BufferView::of: the tensor is undefined";
  RUCHE_REQUIRE(tensor.is_contiguous())
      << "BufferView::of: " << tensor.str() << " is not contiguous";
  return {tensor.raw_data(), tensor.dtype(), tensor.numel(), tensor.device()};
}

std::string BufferView::str() const {
  return std::string(dtype_name(dtype)) + "[" + std::to_string(count) + "] " + device.str();
}

CommGroup::CommGroup(Communicator& comm, bool active) : comm_(active ? &comm : nullptr) {
  if (comm_) comm_->begin_group();
}

CommGroup::~CommGroup() {
  if (!comm_) return;
  try {
    comm_->end_group();
  } catch (...) {  // already unwinding from the error that matters
  }
}

void CommGroup::end() {
  Communicator* comm = std::exchange(comm_, nullptr);
  if (comm) comm->end_group();
}

Work& Work::operator=(Work&& other) noexcept {
  if (this != &other) {
    finish_quietly();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Work::~Work() { finish_quietly(); }

void Work::finish_quietly() noexcept {
  if (!impl_) return;
  try {
    impl_->wait();
  } catch (...) {
  }
  impl_.reset();
}

bool Work::test() {
  if (!impl_) return true;
  if (!impl_->test()) return false;
  impl_.reset();
  return true;
}

CollectiveTimes Work::wait() {
  if (!impl_) return {};
  std::shared_ptr<WorkImpl> impl = std::move(impl_);
  impl->wait();
  return impl->times();
}

// The interface takes counts by value (a backend hands them to its comm thread).
// NOLINTNEXTLINE(performance-unnecessary-value-param)
Work Communicator::do_reduce_scatter_v(BufferView, BufferView recv, std::vector<std::int64_t>,
                                       ReduceOp, std::string_view label) {
  RUCHE_FAIL() << "reduce_scatter_v (" << label << "): per-rank counts are not implemented by this "
               << "communicator (" << recv.str() << ")";
  return {};
}

// NOLINTNEXTLINE(performance-unnecessary-value-param): as do_reduce_scatter_v's counts
Work Communicator::do_all_gather_v(BufferView buffer, std::vector<std::int64_t>,
                                   std::string_view label) {
  RUCHE_FAIL() << "all_gather_v (" << label << "): per-rank counts are not implemented by this "
               << "communicator (" << buffer.str() << ")";
  return {};
}

}  // namespace ruche
