// A block of memory on one device, shared by every Tensor that views it.
#pragma once

#include <cstddef>
#include <memory>

#include "engine/tensor/device.h"

namespace ruche {

class Allocator;

class Storage {
 public:
  // Owns `bytes` bytes allocated on `device`.
  static std::shared_ptr<Storage> allocate(std::size_t bytes, Device device);
  // Owns `bytes` bytes from `allocator` (pinned_allocator(), say), which holds memory of `device`.
  static std::shared_ptr<Storage> allocate(std::size_t bytes, Device device, Allocator& allocator);
  // Borrows memory owned elsewhere (a memory-mapped file, a peer's buffer); never frees it.
  static std::shared_ptr<Storage> borrow(void* data, std::size_t bytes, Device device);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  // Moves this storage into `arena` at byte `offset` (a net's memory plan): its own memory is
  // freed, and every tensor that views it views the arena's bytes there from now on.
  void move_into(std::shared_ptr<Storage> arena, std::size_t offset);

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Storage(void* data, std::size_t bytes, Device device, Allocator* owner)
      : data_(data),
        bytes_(bytes),
        device_(device),
        owner_(owner) {}
  void* data_;
  std::size_t bytes_;
  Device device_;
  Allocator* owner_;                // frees data_; null when borrowed
  std::shared_ptr<Storage> arena_;  // what data_ points into after move_into
};

}  // namespace ruche
