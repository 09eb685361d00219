#include "engine/data/loader.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/tensor/allocator.h"
#include "engine/tensor/storage.h"

namespace ruche {

BatchLoader::BatchLoader(DatasetPtr dataset, DistributedSampler sampler, LoaderOptions options)
    : dataset_(std::move(dataset)),
      sampler_(sampler),
      options_(std::move(options)),
      transform_(dataset_->sample_shape(), options_.transform) {
  RUCHE_REQUIRE(options_.batch_size > 0)
      << "--batch-size " << options_.batch_size << ": expected > 0";
  RUCHE_REQUIRE(options_.threads > 0)
      << "data loader threads " << options_.threads << ": expected > 0";
  RUCHE_CHECK(sampler_.dataset_size() == dataset_->size())
      << "sampler over " << sampler_.dataset_size() << " samples, dataset has " << dataset_->size();
  const std::int64_t n = sampler_.num_samples(), b = options_.batch_size;
  steps_ = options_.drop_last ? n / b : (n + b - 1) / b;
  RUCHE_REQUIRE(steps_ > 0) << "--batch-size " << b << " is larger than the " << n
                            << " samples each rank has per epoch";
  const int depth = options_.depth > 0 ? options_.depth : std::max(2, options_.threads + 1);
  slots_.resize(static_cast<std::size_t>(depth));
  const Shape shape = batch_shape();
  for (Slot& s : slots_) {
    if (options_.device.is_cuda()) {
      const auto bytes = static_cast<std::size_t>(shape.numel()) * sizeof(float);
      s.x = Tensor::view_of(Storage::allocate(bytes, Device::cpu(), pinned_allocator()), 0, shape,
                            DType::f32);
      s.device_x = Tensor::empty(shape, DType::f32, options_.device);
      s.side = std::make_unique<SideCopy>(options_.device);
    } else {
      s.x = Tensor::empty(shape);
    }
    s.y = Tensor::zeros({b}, DType::i32);
  }
  indices_.reserve(static_cast<std::size_t>(n));
}

BatchLoader::~BatchLoader() { stop(); }

Shape BatchLoader::batch_shape() const {
  Shape s{options_.batch_size};
  for (std::int64_t d : dataset_->sample_shape()) s.push_back(d);
  return s;
}

void BatchLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void BatchLoader::start_epoch(std::uint32_t epoch, std::int64_t step) {
  stop();
  RUCHE_REQUIRE(step >= 0 && step <= steps_)
      << "resume at step " << step << " of an epoch of " << steps_ << " steps";
  sampler_.rank_indices(epoch, &indices_);
  epoch_ = epoch;
  first_step_ = step;
  next_batch_ = step;
  stopping_ = false;
  error_ = nullptr;
  started_ = true;
  for (Slot& s : slots_) s.batch = -1;
  for (int t = 0; t < options_.threads; ++t) {
    threads_.emplace_back([this, first = step + t] { produce(first); });
  }
}

LoaderPosition BatchLoader::position() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {epoch_, next_batch_};
}

void BatchLoader::fill(Slot& slot, std::int64_t batch, std::vector<float>& scratch) const {
  const std::int64_t b = options_.batch_size;
  const std::int64_t first = batch * b;
  const std::int64_t count = std::min(b, sampler_.num_samples() - first);
  const std::int64_t numel = dataset_->sample_numel();
  float* x = slot.x.data<float>();
  std::int32_t* y = slot.y.data<std::int32_t>();
  for (std::int64_t j = 0; j < count; ++j) {
    const std::int64_t index = indices_[static_cast<std::size_t>(first + j)];
    float* sample = x + j * numel;
    if (!dataset_->transforms_itself()) {
      dataset_->read(index, sample);
      transform_.apply(sample, scratch.data(), epoch_, static_cast<std::uint64_t>(index));
    } else if (options_.transform.augment.enabled) {
      // Keyed by the sample's own index, as Transform does: any thread, rank or resume agrees.
      const RngStream stream{options_.transform.seed, RngPurpose::augment, epoch_,
                             static_cast<std::uint32_t>(index), 0};
      dataset_->read_augmented(index, stream, sample);
    } else {
      dataset_->read(index, sample);  // the validation transform
    }
    y[j] = dataset_->label(index);
  }
  slot.count = count;
  if (slot.side) slot.side->copy(slot.x, slot.device_x);  // beside the step the GPU is computing
}

void BatchLoader::produce(std::int64_t batch) {
  std::vector<float> scratch(transform_.scratch_floats());
  const auto depth = static_cast<std::int64_t>(slots_.size());
  try {
    for (; batch < steps_; batch += options_.threads) {
      Slot& slot = slots_[static_cast<std::size_t>(batch % depth)];
      {
        std::unique_lock<std::mutex> lock(mutex_);
        // The slot is free once next() has taken every batch before batch - depth + 1.
        cv_.wait(lock, [&] { return stopping_ || batch < next_batch_ + depth; });
        if (stopping_) return;
      }
      fill(slot, batch, scratch);
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

std::int64_t BatchLoader::next(Tensor& x, Tensor& y) {
  RUCHE_CHECK(started_) << "BatchLoader::next before start_epoch";
  x.check_shape(batch_shape(), "batch x");
  y.check_shape(Shape{options_.batch_size}, "batch y");
  std::unique_lock<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
  const std::int64_t batch = next_batch_;
  if (batch >= steps_) return 0;
  Slot& slot = slots_[static_cast<std::size_t>(batch % static_cast<std::int64_t>(slots_.size()))];
  cv_.wait(lock, [&] { return error_ || slot.batch == batch; });
  if (error_) std::rethrow_exception(error_);
  lock.unlock();
  const std::int64_t count = slot.count;
  // From the slot's device copy when there is one and x lives there (a device-to-device copy).
  const Tensor& source = slot.side && x.device() == slot.device_x.device() ? slot.device_x : slot.x;
  if (count == options_.batch_size) {
    x.copy_from(source);
    y.copy_from(slot.y);
  } else {
    x.narrow(0, 0, count).copy_from(source.narrow(0, 0, count));
    y.narrow(0, 0, count).copy_from(slot.y.narrow(0, 0, count));
  }
  if (slot.side) slot.side->release();
  lock.lock();
  next_batch_ = batch + 1;
  lock.unlock();
  cv_.notify_all();
  return count;
}

}  // namespace ruche
