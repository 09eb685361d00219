// Device scratch for one op call, from the device's caching allocator (no cudaMalloc after the
// first call of a size), given back on scope exit even though the kernels using it are only
// queued: the allocator orders its blocks on the stream ops run on, so the next owner's work
// runs after them. Internal to ops/cuda.
#pragma once

#include <cstddef>

#include "engine/tensor/allocator.h"

namespace ruche::ops::gpu {

class Scratch {
 public:
  Scratch(Device device, std::size_t bytes)
      : allocator_(allocator_for(device)),
        bytes_(bytes),
        data_(allocator_.allocate(bytes)) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { allocator_.deallocate(data_, bytes_); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  Allocator& allocator_;
  std::size_t bytes_;
  void* data_;
};

}  // namespace ruche::ops::gpu
