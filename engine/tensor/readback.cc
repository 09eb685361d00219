#include "engine/tensor/readback.h"

#include "engine/error.h"
#include "engine/tensor/allocator.h"
#include "engine/tensor/storage.h"

namespace ruche {

Readback::Readback(Device device) : device_(device) {
  if (device_.is_cuda()) state_ = cuda_readback_create(device_.index);
}

Readback::~Readback() {
  if (state_) cuda_readback_destroy(state_);
}

int Readback::add(const Tensor& source) {
  RUCHE_CHECK(source.defined() && source.device() == device_ && source.is_contiguous())
      << "Readback for " << device_.str() << " given "
      << (source.defined() ? source.str() : "an undefined tensor");
  sources_.push_back(source);
  // Pinned on a CUDA device: the copy goes straight into it, asynchronously.
  hosts_.push_back(
      device_.is_cuda()
          ? Tensor::view_of(Storage::allocate(source.nbytes(), Device::cpu(), pinned_allocator()),
                            0, source.shape(), source.dtype())
          : Tensor::zeros(source.shape(), source.dtype()));
  return static_cast<int>(sources_.size()) - 1;
}

void Readback::fetch() {
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    if (!state_) {
      hosts_[i].copy_from(sources_[i]);
      continue;
    }
    cuda_readback_copy(state_, hosts_[i].raw_data(), sources_[i].raw_data(), sources_[i].nbytes());
  }
  if (state_) cuda_readback_wait(state_);
}

const Tensor& Readback::host(int index) const {
  RUCHE_CHECK(index >= 0 && static_cast<std::size_t>(index) < hosts_.size())
      << "Readback: no source " << index << " (" << hosts_.size() << " registered)";
  return hosts_[static_cast<std::size_t>(index)];
}

}  // namespace ruche
