#include "engine/tensor/storage.h"

#include "engine/tensor/allocator.h"

namespace ruche {

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, Device device) {
  void* p = allocator_for(device).allocate(bytes);
  return std::shared_ptr<Storage>(new Storage(p, bytes, device, true));
}

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t bytes, Device device) {
  return std::shared_ptr<Storage>(new Storage(data, bytes, device, false));
}

Storage::~Storage() {
  if (owned_ && data_) allocator_for(device_).deallocate(data_, bytes_);
}

}  // namespace ruche
