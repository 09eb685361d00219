// The CUDA runtime unit: copies between host and device, and the caching allocator.
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <thread>
#include <vector>

#include "engine/tensor/side_copy.h"
#include "ops/cuda/runtime.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

TEST(CudaRuntime, DevicesHaveNamesAndMemory) {
  RUCHE_REQUIRE_CUDA();
  const auto devices = cuda::list_devices();
  ASSERT_FALSE(devices.empty());
  for (const auto& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.total_memory, 0u);
    EXPECT_GE(d.compute_major, 7);
    EXPECT_GT(d.multiprocessors, 0);
  }
  const std::string versions = cuda::library_versions();
  EXPECT_NE(versions.find("cuDNN"), std::string::npos) << versions;
  EXPECT_EQ(versions.find("unknown"), std::string::npos) << versions;
}

TEST(CudaRuntime, ListingWithoutADeviceGivesAReason) {
  if (testing::why_no_cuda().empty()) GTEST_SKIP() << "a CUDA device is present";
  std::string why;
  EXPECT_TRUE(cuda::list_devices(&why).empty());
  EXPECT_FALSE(why.empty());
}

TEST(CudaCopy, HostDeviceRoundTripIsExact) {
  RUCHE_REQUIRE_CUDA();
  const Tensor f = random_tensor({3, 5, 7}, 1);
  const Tensor f_dev = on_gpu(f);
  EXPECT_TRUE(f_dev.device().is_cuda());
  EXPECT_EQ(on_cpu(f_dev).to_vector<float>(), f.to_vector<float>());
  // Device to device.
  const Tensor f_copy = f_dev.clone();
  EXPECT_NE(f_copy.raw_data(), f_dev.raw_data());
  EXPECT_EQ(f_copy.to_vector<float>(), f.to_vector<float>());

  std::vector<std::int32_t> ints(1001);
  for (std::size_t i = 0; i < ints.size(); ++i) ints[i] = static_cast<std::int32_t>(i * 7919) - 5;
  const Tensor i32 = Tensor::from_vector(ints, {1001});
  EXPECT_EQ(on_gpu(i32).to_vector<std::int32_t>(), ints);

  std::vector<std::uint8_t> bytes(3);
  bytes = {0, 1, 255};
  EXPECT_EQ(on_gpu(Tensor::from_vector(bytes, {3})).to_vector<std::uint8_t>(), bytes);
}

// cuda::host_waits() counts this thread's waits for the GPU (metrics.jsonl's syncs_per_step):
// one per copy to the host, none for work only queued, none for another thread's waits.
TEST(CudaRuntime, HostWaitsCountThisThreadsSyncs) {
  RUCHE_REQUIRE_CUDA();
  const Tensor x = on_gpu(random_tensor({64}, 2));
  const std::uint64_t before = cuda::host_waits();
  Tensor y = x.clone();  // device to device: queued, no wait
  ops::scale(2.0f, y);
  EXPECT_EQ(cuda::host_waits(), before);
  (void)on_cpu(y);
  EXPECT_EQ(cuda::host_waits(), before + 1);
  cuda::synchronize(0);
  EXPECT_EQ(cuda::host_waits(), before + 2);
  std::thread other([] { cuda::synchronize(0); });
  other.join();
  EXPECT_EQ(cuda::host_waits(), before + 2) << "another thread's wait was counted here";
}

TEST(CudaCopy, StridedHostSourceAndViews) {
  RUCHE_REQUIRE_CUDA();
  const Tensor a = random_tensor({4, 6}, 2);
  const Tensor t = a.transpose(0, 1);  // strided on the host
  Tensor dev = Tensor::empty(t.shape(), DType::f32, Device::cuda(0));
  dev.copy_from(t);
  EXPECT_EQ(dev.to_vector<float>(), t.contiguous().to_vector<float>());
  // A narrowed (offset) view of a device tensor copies back only its rows.
  const Tensor rows = on_gpu(a).narrow(0, 1, 2);
  EXPECT_EQ(rows.to_vector<float>(), a.narrow(0, 1, 2).to_vector<float>());
}

TEST(CudaCopy, ZeroAndFillOnDevice) {
  RUCHE_REQUIRE_CUDA();
  Tensor t = on_gpu(random_tensor({257}, 3));
  t.zero();
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(257, 0.0f));
  t.fill(-2.5f);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(257, -2.5f));
}

TEST(CudaAllocator, SizeClassesBoundTheWaste) {
  // Pure arithmetic: runs without a device.
  if (!cuda::compiled_with_cuda()) GTEST_SKIP() << "built without CUDA";
  EXPECT_EQ(cuda::allocator_size_class(0), 512u);
  EXPECT_EQ(cuda::allocator_size_class(1), 512u);
  EXPECT_EQ(cuda::allocator_size_class(512), 512u);
  EXPECT_EQ(cuda::allocator_size_class(513), 640u);
  EXPECT_EQ(cuda::allocator_size_class(1024), 1024u);
  EXPECT_EQ(cuda::allocator_size_class(1025), 1280u);
  std::size_t previous = 0;
  for (std::size_t bytes = 1; bytes < (std::size_t{1} << 32); bytes = bytes * 3 / 2 + 1) {
    const std::size_t size = cuda::allocator_size_class(bytes);
    EXPECT_GE(size, bytes);
    EXPECT_LE(size, std::max<std::size_t>(512, bytes + bytes / 4)) << bytes;
    EXPECT_GE(size, previous) << "classes grow with the request";
    EXPECT_EQ(cuda::allocator_size_class(size), size) << "a class is its own class";
    previous = size;
  }
}

TEST(CudaAllocator, FreedBlocksAreReused) {
  RUCHE_REQUIRE_CUDA();
  void* first = nullptr;
  {
    Tensor a = Tensor::empty({1000, 10}, DType::f32, Device::cuda(0));
    first = a.raw_data();
  }
  const auto before = cuda::allocator_stats(0);
  EXPECT_GE(before.cached_bytes, cuda::allocator_size_class(40000));
  Tensor b = Tensor::empty({10, 1000}, DType::f32, Device::cuda(0));
  const auto after = cuda::allocator_stats(0);
  EXPECT_EQ(b.raw_data(), first) << "the same size class takes the freed block back";
  EXPECT_EQ(after.device_mallocs, before.device_mallocs);
  EXPECT_EQ(after.cache_hits, before.cache_hits + 1);
}

TEST(CudaAllocator, StepsAfterTheFirstCallNoCudaMalloc) {
  RUCHE_REQUIRE_CUDA();
  // A pretend training step: activations and scratch of several sizes, all freed at its end.
  auto step = [] {
    std::vector<Tensor> tensors;
    for (std::int64_t n : {64, 1000, 4096, 12345, 1 << 20, 3 << 18}) {
      tensors.push_back(Tensor::empty({n}, DType::f32, Device::cuda(0)));
      tensors.push_back(Tensor::empty({n}, DType::u8, Device::cuda(0)));
    }
    Tensor t = on_gpu(random_tensor({77, 13}, 4));
    Tensor u = t.clone();
    return u.numel();
  };
  step();
  const auto warm = cuda::allocator_stats(0);
  for (int i = 0; i < 5; ++i) step();
  const auto later = cuda::allocator_stats(0);
  EXPECT_EQ(later.device_mallocs, warm.device_mallocs);
  EXPECT_EQ(later.device_frees, warm.device_frees);
  EXPECT_GT(later.cache_hits, warm.cache_hits);
  EXPECT_EQ(later.allocated_bytes, warm.allocated_bytes);
}

TEST(CudaAllocator, EmptyCacheReturnsBlocksToTheDriver) {
  RUCHE_REQUIRE_CUDA();
  { Tensor a = Tensor::empty({1 << 18}, DType::f32, Device::cuda(0)); }
  const auto before = cuda::allocator_stats(0);
  ASSERT_GT(before.cached_bytes, 0u);
  cuda::empty_cache(0);
  const auto after = cuda::allocator_stats(0);
  EXPECT_EQ(after.cached_bytes, 0u);
  EXPECT_GT(after.device_frees, before.device_frees);
  EXPECT_EQ(after.reserved_bytes, after.allocated_bytes);
  // Still usable afterwards.
  Tensor b = on_gpu(random_tensor({100}, 5));
  EXPECT_EQ(b.to_vector<float>(), random_tensor({100}, 5).to_vector<float>());
}

// A SideCopy destination may be a block freed while compute work on it is still queued; its first
// copy (on the non-blocking copy stream) must not land before that work has run.
TEST(CudaSideCopy, FirstCopyWaitsForQueuedWorkOnItsBlock) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const std::int64_t n = std::int64_t{1} << 26;  // 256 MiB: the queued scales take milliseconds
  void* block = nullptr;
  {
    Tensor a = Tensor::zeros({n}, DType::f32, gpu);
    for (int i = 0; i < 40; ++i) ops::scale(2.0f, a);  // queued, not waited for
    block = a.raw_data();
  }
  Tensor dst = Tensor::empty({n}, DType::f32, gpu);
  ASSERT_EQ(dst.raw_data(), block) << "the test needs the freed block back";
  Tensor host = Tensor::empty({n});
  for (float& v : std::span<float>(host.data<float>(), static_cast<std::size_t>(n))) v = 3.0f;
  SideCopy side(gpu);
  side.copy(host, dst);
  cuda::synchronize(0);
  const std::vector<float> got = dst.to_vector<float>();
  std::int64_t wrong = 0;
  for (float v : got) wrong += v != 3.0f;
  EXPECT_EQ(wrong, 0);
}

TEST(CudaAllocator, UnknownDeviceIsAClearError) {
  RUCHE_REQUIRE_CUDA();
  const int count = static_cast<int>(cuda::list_devices().size());
  EXPECT_THROW(Tensor::empty({4}, DType::f32, Device::cuda(count)), Error);
}

}  // namespace
}  // namespace ruche
