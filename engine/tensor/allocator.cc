// Host memory: 64-byte aligned (a cache line, and what AVX-512 loads want).
#include "engine/tensor/allocator.h"

#include <cstdlib>
#include <cstring>

#include "engine/error.h"

namespace ruche {
namespace {

constexpr std::size_t kAlignment = 64;

class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    if (rounded == 0) rounded = kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    RUCHE_REQUIRE(p != nullptr) << "out of host memory allocating " << bytes << " bytes";
    return p;
  }
  void deallocate(void* ptr, std::size_t) override { std::free(ptr); }
};

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator allocator;
  return allocator;
}

Allocator& allocator_for(Device device) {
  return device.is_cpu() ? cpu_allocator() : cuda_allocator(device.index);
}

Allocator& pinned_allocator() { return cuda_pinned_allocator(); }

void use_device(Device device) {
  if (device.is_cuda()) cuda_use_device(device.index);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
  } else {
    cuda_copy_bytes(dst, dst_device, src, src_device, bytes);
  }
}

void zero_bytes(void* ptr, Device device, std::size_t bytes) {
  if (bytes == 0) return;
  if (device.is_cpu()) {
    std::memset(ptr, 0, bytes);
  } else {
    cuda_zero_bytes(ptr, device, bytes);
  }
}

}  // namespace ruche
