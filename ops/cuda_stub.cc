// Linked instead of ops/cuda when ruche is built without CUDA: every CUDA request is a clear error.
#include "engine/error.h"
#include "engine/tensor/allocator.h"
#include "ops/cuda/runtime.h"
#include "ops/op_table.h"

namespace ruche {
namespace {
constexpr const char* kNoCuda =
    "this ruche was built without CUDA (rebuild with RUCHE_CUDA=ON where nvcc exists)";
}  // namespace

Allocator& cuda_allocator(int index) {
  RUCHE_FAIL() << "cuda:" << index << " requested but " << kNoCuda;
}

void cuda_copy_bytes(void*, Device, const void*, Device, std::size_t) { RUCHE_FAIL() << kNoCuda; }

void cuda_zero_bytes(void*, Device, std::size_t) { RUCHE_FAIL() << kNoCuda; }

void cuda_use_device(int index) {
  RUCHE_FAIL() << "cuda:" << index << " requested but " << kNoCuda;
}

Allocator& cuda_pinned_allocator() { return cpu_allocator(); }

void* cuda_side_copy_create(int) { RUCHE_FAIL() << kNoCuda; }
void cuda_side_copy_destroy(void*) {}
void cuda_side_copy(void*, void*, const void*, std::size_t) { RUCHE_FAIL() << kNoCuda; }
void cuda_side_copy_release(void*) {}

void* cuda_readback_create(int) { RUCHE_FAIL() << kNoCuda; }
void cuda_readback_destroy(void*) {}
void cuda_readback_copy(void*, void*, const void*, std::size_t) { RUCHE_FAIL() << kNoCuda; }
void cuda_readback_wait(void*) { RUCHE_FAIL() << kNoCuda; }

namespace ops {
const OpTable* cuda_op_table() { return nullptr; }
}  // namespace ops

namespace cuda {
bool compiled_with_cuda() { return false; }
std::vector<DeviceInfo> list_devices(std::string* why_none) {
  if (why_none) *why_none = kNoCuda;
  return {};
}
std::string library_versions() { return "built without CUDA"; }
std::size_t allocator_size_class(std::size_t bytes) { return bytes; }
AllocatorStats allocator_stats(int) { RUCHE_FAIL() << kNoCuda; }
void empty_cache(int) {}
void release_block(int, void*) { RUCHE_FAIL() << kNoCuda; }
void synchronize(int) { RUCHE_FAIL() << kNoCuda; }
std::uint64_t host_waits() { return 0; }
void* compute_stream() { return nullptr; }
}  // namespace cuda

}  // namespace ruche
