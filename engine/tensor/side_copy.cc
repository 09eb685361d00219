#include "engine/tensor/side_copy.h"

#include "engine/error.h"
#include "engine/tensor/allocator.h"

namespace ruche {

SideCopy::SideCopy(Device device) : device_(device) {
  if (device_.is_cuda()) state_ = cuda_side_copy_create(device_.index);
}

SideCopy::~SideCopy() {
  if (state_) cuda_side_copy_destroy(state_);
}

void SideCopy::copy(const Tensor& src, Tensor& dst) {
  RUCHE_CHECK(dst.device() == device_)
      << "SideCopy for " << device_.str() << " given a " << dst.device().str() << " destination";
  if (!state_) {
    dst.copy_from(src);
    return;
  }
  RUCHE_CHECK(src.device().is_cpu() && src.is_contiguous() && dst.is_contiguous() &&
              src.nbytes() == dst.nbytes())
      << "SideCopy: " << src.str() << " -> " << dst.str();
  cuda_side_copy(state_, dst.raw_data(), src.raw_data(), src.nbytes());
}

void SideCopy::release() {
  if (state_) cuda_side_copy_release(state_);
}

}  // namespace ruche
