#include "engine/tensor/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>

#include "engine/rng/fill.h"
#include "engine/tensor/npy.h"

namespace ruche {
namespace {

TEST(Tensor, EmptyIsContiguousAndAligned) {
  Tensor t = Tensor::empty({2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64, 0u);
  EXPECT_EQ(t.str(), "f32[2, 3, 4] cpu");
}

TEST(Tensor, EveryDTypeHasItsSize) {
  EXPECT_EQ(Tensor::empty({3}, DType::bf16).nbytes(), 6u);
  EXPECT_EQ(Tensor::empty({3}, DType::f16).nbytes(), 6u);
  EXPECT_EQ(Tensor::empty({3}, DType::i32).nbytes(), 12u);
  EXPECT_EQ(Tensor::empty({3}, DType::i64).nbytes(), 24u);
  EXPECT_EQ(Tensor::empty({3}, DType::u8).nbytes(), 3u);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor v = t.view({3, 2});
  Tensor n = t.narrow(1, 1, 2);
  EXPECT_TRUE(v.shares_storage(t));
  EXPECT_TRUE(n.shares_storage(t));
  v.data<float>()[0] = 10;
  EXPECT_EQ(t.to_vector()[0], 10);
  EXPECT_FALSE(n.is_contiguous());
  EXPECT_EQ(n.to_vector(), (std::vector<float>{2, 3, 5, 6}));
  EXPECT_EQ(t.view({-1}).shape(), (Shape{6}));
  EXPECT_EQ(t.view({1, -1, 2}).shape(), (Shape{1, 3, 2}));
}

TEST(Tensor, TransposeAndContiguous) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_EQ(tt.contiguous().to_vector(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_FALSE(tt.contiguous().shares_storage(t));
  EXPECT_THROW(tt.view({6}), Error);
}

TEST(Tensor, FlattenKeepsLeadingDims) {
  Tensor t = Tensor::zeros({2, 3, 4, 5});
  EXPECT_EQ(t.flatten().shape(), (Shape{2, 60}));
  EXPECT_EQ(t.flatten(0).shape(), (Shape{120}));
}

TEST(Tensor, CloneCopies) {
  Tensor t = Tensor::from_vector({1, 2}, {2});
  Tensor c = t.clone();
  c.fill(7);
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2}));
  EXPECT_EQ(c.to_vector(), (std::vector<float>{7, 7}));
}

TEST(Tensor, MismatchesAreClearErrors) {
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({3, 2});
  Tensor i = Tensor::zeros({2, 3}, DType::i32);
  EXPECT_THROW(a.copy_from(b), Error);
  EXPECT_THROW(a.copy_from(i), Error);
  EXPECT_THROW(i.data<float>(), Error);
  EXPECT_THROW(a.view({4, 2}), Error);
  EXPECT_THROW(a.narrow(0, 1, 2), Error);
  try {
    a.copy_from(b);
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "copy: shape mismatch, [2, 3] vs [3, 2]");
  }
}

TEST(Tensor, CudaWithoutDeviceIsAClearError) {
  // Either this build has no CUDA or the machine has no GPU: both must say so, not crash.
  try {
    Tensor::empty({4}, DType::f32, Device::cuda(0));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
    return;
  } catch (...) {
    FAIL() << "expected ruche::Error";
  }
  GTEST_SKIP() << "a CUDA device exists here";
}

TEST(Device, Parse) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_THROW(Device::parse("gpu"), Error);
  EXPECT_THROW(Device::parse("cuda:x"), Error);
}

// One visible GPU is this rank's own (the launcher set CUDA_VISIBLE_DEVICES per rank); several are
// shared by the node's ranks, one each, and too few of them is a user error naming the counts.
TEST(Device, LocalGpuChoice) {
  EXPECT_EQ(local_gpu(1, 0, 1), 0);
  EXPECT_EQ(local_gpu(1, 3, 4), 0);  // four ranks, each shown its own GPU
  EXPECT_EQ(local_gpu(4, 2, 4), 2);
  EXPECT_EQ(local_gpu(8, 1, 2), 1);
  try {
    local_gpu(2, 2, 3);
    ADD_FAILURE() << "3 ranks on 2 GPUs were allowed";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("3 ranks"), std::string::npos) << what;
    EXPECT_NE(what.find("2 visible GPUs"), std::string::npos) << what;
  }
}

TEST(Npy, RoundTrip) {
  const auto path = std::filesystem::temp_directory_path() / "ruche_npy_roundtrip.npy";
  Tensor t = Tensor::from_vector({1.5f, -2, 3, 4, 5, 6}, {3, 2});
  save_npy(path, t);
  Tensor u = load_npy(path);
  EXPECT_EQ(u.shape(), t.shape());
  EXPECT_EQ(u.to_vector(), t.to_vector());
  Tensor labels = Tensor::from_vector<std::int32_t>({3, 1, 4}, {3});
  save_npy(path, labels);
  EXPECT_EQ(load_npy(path).to_vector<std::int32_t>(), (std::vector<std::int32_t>{3, 1, 4}));
  std::filesystem::remove(path);
}

TEST(Npy, TruncatedFileNamesTheFile) {
  const std::string bytes = to_npy(Tensor::zeros({100}));
  try {
    parse_npy(bytes.substr(0, bytes.size() - 8), "weights.npy");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weights.npy: truncated"), std::string::npos);
  }
  EXPECT_THROW(load_npy("/nonexistent/x.npy"), Error);
}

}  // namespace
}  // namespace ruche
