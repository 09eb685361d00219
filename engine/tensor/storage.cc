#include "engine/tensor/storage.h"

#include "engine/error.h"
#include "engine/tensor/allocator.h"

namespace ruche {

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, Device device) {
  return allocate(bytes, device, allocator_for(device));
}

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, Device device, Allocator& allocator) {
  void* p = allocator.allocate(bytes);
  return std::shared_ptr<Storage>(new Storage(p, bytes, device, &allocator));
}

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t bytes, Device device) {
  return std::shared_ptr<Storage>(new Storage(data, bytes, device, nullptr));
}

void Storage::move_into(std::shared_ptr<Storage> arena, std::size_t offset) {
  RUCHE_CHECK(arena && arena->device_ == device_ && offset + bytes_ <= arena->bytes_)
      << "storage of " << bytes_ << " bytes moved past the end of its arena";
  if (owner_ && data_) owner_->deallocate(data_, bytes_);
  owner_ = nullptr;
  data_ = static_cast<unsigned char*>(arena->data_) + offset;
  arena_ = std::move(arena);
}

Storage::~Storage() {
  if (owner_ && data_) owner_->deallocate(data_, bytes_);
}

}  // namespace ruche
