#include "engine/data/batch_ring.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"
#include "engine/tensor/allocator.h"
#include "engine/tensor/storage.h"

namespace ruche {
namespace {

// A host slot's tensor, zeroed: pinned for a CUDA ring, so its copy to the device is
// asynchronous.
Tensor host_tensor(const Shape& shape, DType dtype, Device device) {
  if (!device.is_cuda()) return Tensor::zeros(shape, dtype);
  const auto bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  Tensor t =
      Tensor::view_of(Storage::allocate(bytes, Device::cpu(), pinned_allocator()), 0, shape, dtype);
  std::memset(t.raw_data(), 0, bytes);
  return t;
}

}  // namespace

BatchRing::BatchRing(const Shape& x_shape, DType x_dtype, int threads, int depth, Device device,
                     Fill fill, const Shape& y_sample, int staging_slots)
    : x_shape_(x_shape),
      device_(device),
      threads_count_(threads),
      fill_(std::move(fill)) {
  RUCHE_REQUIRE(threads > 0) << "data loader threads " << threads << ": expected > 0";
  RUCHE_CHECK(x_shape.ndim() > 0 && x_shape[0] > 0) << "batch shape " << x_shape.str();
  const std::int64_t rows = x_shape[0];
  Shape y_shape{rows};
  for (const std::int64_t d : y_sample) y_shape.push_back(d);
  const DType y_dtype = y_sample.ndim() == 0 ? DType::i32 : DType::f32;
  slots_.resize(static_cast<std::size_t>(depth > 0 ? depth : std::max(2, threads + 1)));
  for (Slot& s : slots_) {
    s.x = host_tensor(x_shape, x_dtype, device);
    s.y = host_tensor(y_shape, y_dtype, device);
    s.samples.reserve(static_cast<std::size_t>(rows));  // so fill's resize allocates nothing
  }
  staging_.resize(static_cast<std::size_t>(
      staging_slots >= 0 ? staging_slots : (device.is_cuda() ? kDeviceSlots : 0)));
  for (StagingSlot& s : staging_) {
    s.x = Tensor::empty(x_shape, x_dtype, device);
    s.y = Tensor::empty(y_shape, y_dtype, device);
    s.side = std::make_unique<SideCopy>(device);
  }
}

BatchRing::~BatchRing() { stop(); }

void BatchRing::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void BatchRing::start(std::int64_t first, std::int64_t end) {
  stop();
  next_batch_ = first;
  end_ = end;
  stopping_ = false;
  error_ = nullptr;
  started_ = true;
  for (Slot& s : slots_) s.batch = -1;
  for (int t = 0; t < threads_count_; ++t) {
    threads_.emplace_back([this, first, t] { produce(first + t, t); });
  }
}

std::int64_t BatchRing::next_batch() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return next_batch_;
}

void BatchRing::produce(std::int64_t batch, int thread) {
  const auto depth = static_cast<std::int64_t>(slots_.size());
  try {
    use_device(device_);
    for (; batch < end_; batch += threads_count_) {
      Slot& slot = slots_[static_cast<std::size_t>(batch % depth)];
      {
        std::unique_lock<std::mutex> lock(mutex_);
        // The slot is free once next() has taken every batch before batch - depth + 1.
        cv_.wait(lock, [&] { return stopping_ || batch < next_batch_ + depth; });
        if (stopping_) return;
      }
      Rows rows{slot.x, slot.y, slot.samples};
      slot.count = fill_(batch, thread, rows);
      if (!staging_.empty()) {
        const auto staged = static_cast<std::int64_t>(staging_.size());
        {
          std::unique_lock<std::mutex> lock(mutex_);
          // The staging slot is free once next() has taken batch - staged.
          cv_.wait(lock, [&] { return stopping_ || batch < next_batch_ + staged; });
          if (stopping_) return;
        }
        StagingSlot& staging = staging_[static_cast<std::size_t>(batch % staged)];
        // Beside the step the GPU computes; the labels too, so next() copies no host memory.
        staging.side->copy(slot.x, staging.x);
        staging.side->copy(slot.y, staging.y);
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        slot.batch = batch;
      }
      cv_.notify_all();
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

std::int64_t BatchRing::next(Tensor& x, Tensor& y, std::vector<std::int64_t>* samples) {
  RUCHE_CHECK(started_) << "a data loader's next() before start_epoch";
  x.check_shape(x_shape_, "batch x");
  y.check_shape(slots_.front().y.shape(), "batch y");
  std::unique_lock<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
  const std::int64_t batch = next_batch_;
  if (batch >= end_) return 0;
  Slot& slot = slots_[static_cast<std::size_t>(batch % static_cast<std::int64_t>(slots_.size()))];
  cv_.wait(lock, [&] { return error_ || slot.batch == batch; });
  if (error_) std::rethrow_exception(error_);
  lock.unlock();
  const std::int64_t count = slot.count;
  // From the batch's staging copy when there is one and x lives there (a device-to-device copy).
  StagingSlot* staging =
      staging_.empty()
          ? nullptr
          : &staging_[static_cast<std::size_t>(batch % static_cast<std::int64_t>(staging_.size()))];
  const bool staged = staging && x.device() == staging->x.device();
  const Tensor& source = staged ? staging->x : slot.x;
  const Tensor& labels = staged && y.device() == staging->y.device() ? staging->y : slot.y;
  if (count == x_shape_[0]) {
    x.copy_from(source);
    y.copy_from(labels);
  } else {
    x.narrow(0, 0, count).copy_from(source.narrow(0, 0, count));
    y.narrow(0, 0, count).copy_from(labels.narrow(0, 0, count));
  }
  if (samples) *samples = slot.samples;
  if (staging) staging->side->release();
  lock.lock();
  next_batch_ = batch + 1;
  lock.unlock();
  cv_.notify_all();
  return count;
}

}  // namespace ruche
