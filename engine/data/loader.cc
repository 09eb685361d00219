#include "engine/data/loader.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "engine/error.h"

namespace ruche {

BatchLoader::BatchLoader(DatasetPtr dataset, DistributedSampler sampler, LoaderOptions options)
    : dataset_(std::move(dataset)),
      sampler_(std::move(sampler)),
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
  RUCHE_REQUIRE((!options_.target_is_input && dataset_->target_shape().ndim() == 0) ||
                !dataset_->transforms_itself())
      << "--reconstruct reads in-memory sources (IDX, CIFAR, npz); " << dataset_->kind()
      << " samples are decoded and normalised in one pass, so the target cannot be kept";
  scratch_.assign(static_cast<std::size_t>(options_.threads),
                  std::vector<float>(transform_.scratch_floats()));
  if (!options_.target_is_input && dataset_->target_shape().ndim() > 0) {
    target_scratch_.assign(static_cast<std::size_t>(options_.threads),
                           std::vector<float>(static_cast<std::size_t>(target_shape().numel())));
  }
  ring_ = std::make_unique<BatchRing>(
      batch_shape(), DType::f32, options_.threads, options_.depth, options_.device,
      [this](std::int64_t batch, int thread, BatchRing::Rows& rows) {
        return fill(batch, thread, rows);
      },
      target_shape());
  indices_.reserve(static_cast<std::size_t>(n));
  const char* trace = std::getenv("RUCHE_TRACE_SAMPLES");
  if (trace != nullptr && *trace != '\0' && options_.drop_last) {
    const std::string path =
        std::string(trace) + "/samples-" + std::to_string(sampler_.rank()) + ".txt";
    trace_ = std::fopen(path.c_str(), "a");
    RUCHE_REQUIRE(trace_ != nullptr) << "RUCHE_TRACE_SAMPLES: cannot append to " << path;
  }
}

BatchLoader::~BatchLoader() {
  ring_->stop();
  if (trace_ != nullptr) std::fclose(trace_);
}

Shape BatchLoader::batch_shape() const {
  Shape s{options_.batch_size};
  for (std::int64_t d : dataset_->sample_shape()) s.push_back(d);
  return s;
}

void BatchLoader::start_epoch(std::uint32_t epoch, std::int64_t step) {
  ring_->stop();
  RUCHE_REQUIRE(step >= 0 && step <= steps_)
      << "resume at step " << step << " of an epoch of " << steps_ << " steps";
  sampler_.rank_indices(epoch, &indices_);
  epoch_ = epoch;
  first_step_ = step;
  ring_->start(step, steps_);
}

Shape BatchLoader::target_shape() const {
  return options_.target_is_input ? dataset_->sample_shape() : dataset_->target_shape();
}

LoaderPosition BatchLoader::position() const { return {epoch_, ring_->next_batch()}; }

std::int64_t BatchLoader::fill(std::int64_t batch, int thread, BatchRing::Rows& rows) {
  const std::int64_t b = options_.batch_size;
  const std::int64_t first = batch * b;
  const std::int64_t count = std::min(b, sampler_.num_samples() - first);
  const std::int64_t numel = dataset_->sample_numel();
  float* x = rows.x.data<float>();
  const bool reconstruct = options_.target_is_input;
  const bool regression = !reconstruct && !target_scratch_.empty();  // the dataset's float y
  std::int32_t* y = reconstruct || regression ? nullptr : rows.y.data<std::int32_t>();
  float* target = reconstruct || regression ? rows.y.data<float>() : nullptr;
  const Shape target_shape = regression ? dataset_->target_shape() : Shape{};
  const std::int64_t target_numel = regression ? target_shape.numel() : numel;
  std::vector<float>& scratch = scratch_[static_cast<std::size_t>(thread)];
  for (std::int64_t j = 0; j < count; ++j) {
    const std::int64_t index = indices_[static_cast<std::size_t>(first + j)];
    float* sample = x + j * numel;
    if (!dataset_->transforms_itself()) {
      dataset_->read(index, sample);
      transform_.apply(sample, scratch.data(), epoch_, static_cast<std::uint64_t>(index),
                       reconstruct ? target + j * numel : nullptr);
      if (regression) {  // the same crop and flip as the input, when the target is spatial
        float* t = target + j * target_numel;
        dataset_->read_target(index, t);
        transform_.augment_target(t, target_shape,
                                  target_scratch_[static_cast<std::size_t>(thread)].data(), epoch_,
                                  static_cast<std::uint64_t>(index));
      }
    } else if (options_.transform.augment.enabled) {
      // Keyed by the sample's own index, as Transform does: any thread, rank or resume agrees.
      const RngStream stream{options_.transform.seed, RngPurpose::augment, epoch_,
                             static_cast<std::uint32_t>(index), 0};
      dataset_->read_augmented(index, stream, sample);
    } else {
      dataset_->read(index, sample);  // the validation transform
    }
    if (y) y[j] = dataset_->label(index);
  }
  return count;
}

std::int64_t BatchLoader::next(Tensor& x, Tensor& y) {
  if (trace_ == nullptr) return ring_->next(x, y);
  const std::int64_t batch = ring_->next_batch();
  const std::int64_t n = ring_->next(x, y);
  if (n > 0) {  // a line at a time, flushed: a killed rank leaves whole lines
    std::fprintf(trace_, "epoch %u batch %lld world %d:", epoch_, static_cast<long long>(batch),
                 sampler_.world());
    for (std::int64_t j = 0; j < n; ++j) {
      std::fprintf(trace_, " %lld",
                   static_cast<long long>(
                       indices_[static_cast<std::size_t>(batch * options_.batch_size + j)]));
    }
    std::fprintf(trace_, "\n");
    std::fflush(trace_);
  }
  return n;
}

}  // namespace ruche
