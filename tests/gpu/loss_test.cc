// The CUDA softmax cross-entropy against its CPU twin on random logits (norm-relative 1e-5), with
// and without label smoothing, class weights and an ignored label, bf16 / f16 logits, out-of-range
// labels, determinism, and the argument checks. (MSE is in eltwise_test.cc.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/cuda/runtime.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/half_support.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::expect_error;
using testing::on_cpu;
using testing::on_gpu;
using testing::random_tensor;

constexpr double kTol = 1e-5;

// Labels spread over the classes, i32 [n].
Tensor labels_for(std::int64_t n, std::int64_t c) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7 + 3) % c);
  return Tensor::from_vector(v, {n});
}

// The same params with the class weights on the GPU.
ops::CrossEntropyParams on_gpu_params(const ops::CrossEntropyParams& p) {
  ops::CrossEntropyParams q = p;
  if (p.class_weights.defined()) q.class_weights = on_gpu(p.class_weights);
  return q;
}

// Forward then backward on the CPU (the reference): probs, loss, dlogits.
struct CrossEntropyResults {
  Tensor probs, loss, dlogits;
};
CrossEntropyResults cpu_cross_entropy(const Tensor& logits, const Tensor& labels, float dloss,
                                      const ops::CrossEntropyParams& p) {
  CrossEntropyResults r{Tensor::empty(logits.shape()), Tensor::empty({1}),
                        Tensor::empty(logits.shape())};
  ops::softmax_cross_entropy_forward(logits, labels, r.probs, r.loss, p);
  ops::softmax_cross_entropy_backward(r.probs, labels, r.dlogits, dloss, p);
  return r;
}

// The same on the GPU with logits and dlogits in the given tensors' dtypes; results on the cpu.
CrossEntropyResults gpu_cross_entropy(const Tensor& logits, const Tensor& labels, float dloss,
                                      const ops::CrossEntropyParams& p, DType dlogits_dtype) {
  const Device gpu = Device::cuda(0);
  Tensor probs = Tensor::empty(logits.shape(), DType::f32, gpu);
  Tensor loss = Tensor::empty({1}, DType::f32, gpu);
  Tensor dlogits = Tensor::empty(logits.shape(), dlogits_dtype, gpu);
  const ops::CrossEntropyParams q = on_gpu_params(p);
  const Tensor gpu_labels = on_gpu(labels);
  ops::softmax_cross_entropy_forward(on_gpu(logits), gpu_labels, probs, loss, q);
  ops::softmax_cross_entropy_backward(probs, gpu_labels, dlogits, dloss, q);
  return {on_cpu(probs), on_cpu(loss), on_cpu(dlogits)};
}

std::string name_of(const Shape& shape, float smoothing, bool weighted) {
  return shape.str() + " smoothing " + std::to_string(smoothing) +
         (weighted ? " weighted" : " unweighted");
}

TEST(CudaCrossEntropy, MatchesCpu) {
  RUCHE_REQUIRE_CUDA();
  // N = 1, C = 1, C below, at and far above one block's 256 threads, many rows.
  for (const Shape& shape : {Shape{1, 1}, Shape{1, 10}, Shape{7, 3}, Shape{64, 10}, Shape{5, 1000},
                             Shape{3, 5000}, Shape{300, 7}}) {
    for (float smoothing : {0.0f, 0.1f}) {
      for (bool weighted : {false, true}) {
        SCOPED_TRACE(name_of(shape, smoothing, weighted));
        const std::int64_t n = shape[0], c = shape[1];
        const Tensor logits = random_tensor(shape, 31, -4.0f, 4.0f);
        const Tensor labels = labels_for(n, c);
        ops::CrossEntropyParams p;
        p.label_smoothing = smoothing;
        if (weighted) p.class_weights = random_tensor({c}, 32, 0.1f, 2.0f);
        const CrossEntropyResults cpu = cpu_cross_entropy(logits, labels, 0.75f, p);
        const CrossEntropyResults gpu = gpu_cross_entropy(logits, labels, 0.75f, p, DType::f32);
        EXPECT_TENSORS_CLOSE(gpu.probs, cpu.probs, kTol);
        EXPECT_TENSORS_CLOSE(gpu.loss, cpu.loss, kTol);
        EXPECT_TENSORS_CLOSE(gpu.dlogits, cpu.dlogits, kTol);
      }
    }
  }
}

// ignore_label: out of the classes (-1, every third row) and a class (0), with smoothing and
// weights; then every row ignored (loss and gradient 0).
TEST(CudaCrossEntropy, IgnoredLabelsMatchCpu) {
  RUCHE_REQUIRE_CUDA();
  for (const Shape& shape : {Shape{7, 3}, Shape{64, 10}, Shape{5, 1000}, Shape{300, 7}}) {
    const std::int64_t n = shape[0], c = shape[1];
    const Tensor logits = random_tensor(shape, 41, -4.0f, 4.0f);
    std::vector<std::int32_t> with_minus_one = labels_for(n, c).to_vector<std::int32_t>();
    for (std::size_t i = 0; i < with_minus_one.size(); i += 3) with_minus_one[i] = -1;
    for (std::int32_t ignored : {-1, 0}) {
      for (bool weighted : {false, true}) {
        SCOPED_TRACE(name_of(shape, 0.1f, weighted) + " ignoring " + std::to_string(ignored));
        const Tensor labels =
            ignored == -1 ? Tensor::from_vector(with_minus_one, {n}) : labels_for(n, c);
        ops::CrossEntropyParams p;
        p.label_smoothing = 0.1f;
        p.ignore_label = ignored;
        if (weighted) p.class_weights = random_tensor({c}, 42, 0.1f, 2.0f);
        const CrossEntropyResults cpu = cpu_cross_entropy(logits, labels, 0.75f, p);
        const CrossEntropyResults gpu = gpu_cross_entropy(logits, labels, 0.75f, p, DType::f32);
        EXPECT_TENSORS_CLOSE(gpu.probs, cpu.probs, kTol);
        EXPECT_TENSORS_CLOSE(gpu.loss, cpu.loss, kTol);
        EXPECT_TENSORS_CLOSE(gpu.dlogits, cpu.dlogits, kTol);
      }
    }
  }
  ops::CrossEntropyParams p;
  p.ignore_label = 7;
  const Tensor all_ignored = Tensor::from_vector<std::int32_t>({7, 7, 7}, {3});
  const CrossEntropyResults gpu =
      gpu_cross_entropy(random_tensor({3, 4}, 43, -2.0f, 2.0f), all_ignored, 1.0f, p, DType::f32);
  EXPECT_EQ(gpu.loss.item(), 0.0f);
  for (float d : gpu.dlogits.to_vector()) EXPECT_EQ(d, 0.0f);
}

TEST(CudaCrossEntropy, KnownValue) {
  RUCHE_REQUIRE_CUDA();
  // Independent of the CPU twin: uniform logits over 4 classes give log(4) whatever the labels.
  Tensor logits = Tensor::zeros({3, 4}, DType::f32, Device::cuda(0));
  Tensor probs = Tensor::empty({3, 4}, DType::f32, Device::cuda(0));
  Tensor loss = Tensor::empty({1}, DType::f32, Device::cuda(0));
  ops::softmax_cross_entropy_forward(logits, on_gpu(labels_for(3, 4)), probs, loss, {});
  EXPECT_NEAR(loss.item(), std::log(4.0f), 1e-6);
  for (float v : probs.to_vector<float>()) EXPECT_FLOAT_EQ(v, 0.25f);
}

TEST(CudaCrossEntropy, HalfLogitsMatchCpuOnTheRoundedValues) {
  RUCHE_REQUIRE_CUDA();
  for (DType dtype : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    const Shape shape{37, 100};
    const Tensor logits = random_tensor(shape, 33, -4.0f, 4.0f);
    const Tensor narrow = testing::narrowed(logits, dtype);
    const Tensor rounded = testing::widened(narrow);
    const Tensor labels = labels_for(shape[0], shape[1]);
    ops::CrossEntropyParams p;
    p.label_smoothing = 0.1f;
    const CrossEntropyResults cpu = cpu_cross_entropy(rounded, labels, 1.0f, p);
    // The GPU computes in float / double from the same values: fp32 agreement.
    const CrossEntropyResults gpu = gpu_cross_entropy(narrow, labels, 1.0f, p, dtype);
    EXPECT_TENSORS_CLOSE(gpu.probs, cpu.probs, kTol);
    EXPECT_TENSORS_CLOSE(gpu.loss, cpu.loss, kTol);
    // dlogits stored in bf16 / f16: one rounding, at most 2^-8 / 2^-11 relative: 5e-3 / 1e-3.
    EXPECT_TENSORS_CLOSE(testing::widened(gpu.dlogits), cpu.dlogits,
                         dtype == DType::bf16 ? 5e-3 : 1e-3);
  }
}

TEST(CudaCrossEntropy, IsDeterministic) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{4096, 100};
  const Tensor logits = on_gpu(random_tensor(shape, 34, -4.0f, 4.0f));
  const Tensor labels = on_gpu(labels_for(shape[0], shape[1]));
  Tensor probs = Tensor::empty(shape, DType::f32, Device::cuda(0));
  Tensor a = Tensor::empty({1}, DType::f32, Device::cuda(0));
  Tensor b = Tensor::empty({1}, DType::f32, Device::cuda(0));
  ops::CrossEntropyParams p;
  p.label_smoothing = 0.2f;
  ops::softmax_cross_entropy_forward(logits, labels, probs, a, p);
  ops::softmax_cross_entropy_forward(logits, labels, probs, b, p);
  EXPECT_EQ(a.item(), b.item());
}

TEST(CudaCrossEntropy, OutOfRangeLabels) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const Tensor logits = on_gpu(random_tensor({6, 5}, 35));
  Tensor probs = Tensor::empty({6, 5}, DType::f32, gpu);
  Tensor loss = Tensor::empty({1}, DType::f32, gpu);
  // The forward throws as the CPU op does, naming the first bad label and its index.
  for (std::int32_t bad : {5, -1}) {
    const Tensor labels =
        on_gpu(Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, bad, 4, bad}, {6}));
    expect_error([&] { ops::softmax_cross_entropy_forward(logits, labels, probs, loss, {}); },
                 {"softmax_cross_entropy_forward", "label " + std::to_string(bad), "index 3",
                  "out of range for 5 classes"});
  }
  // The backward does not check again (no second wait): the bad row gets NaN, the others are
  // finite.
  const Tensor good = on_gpu(Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, 3, 4, 0}, {6}));
  ops::softmax_cross_entropy_forward(logits, good, probs, loss, {});
  const Tensor labels =
      on_gpu(Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, 7, 4, 0}, {6}));
  Tensor dlogits = Tensor::empty({6, 5}, DType::f32, gpu);
  ops::softmax_cross_entropy_backward(probs, labels, dlogits, 1.0f, {});
  const auto d = dlogits.to_vector<float>();
  for (std::size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(std::isnan(d[i]), i / 5 == 3) << "element " << i;
  }
}

// With a label_check the forward leaves the first bad row for the step's read-back instead of
// waiting: no host wait, the code names the row and its label, the loss of the good rows stands.
TEST(CudaCrossEntropy, DeferredLabelCheckWaitsForNothing) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  const Tensor logits = on_gpu(random_tensor({6, 5}, 35));
  Tensor probs = Tensor::empty({6, 5}, DType::f32, gpu);
  Tensor loss = Tensor::empty({1}, DType::f32, gpu);
  ops::CrossEntropyParams p;
  p.label_check = Tensor::zeros({1}, DType::i64, gpu);
  const Tensor bad = on_gpu(Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, -1, 4, 9}, {6}));
  const std::uint64_t waits = cuda::host_waits();
  ops::softmax_cross_entropy_forward(logits, bad, probs, loss, p);
  EXPECT_EQ(cuda::host_waits(), waits);
  const std::int64_t code = p.label_check.to(Device::cpu()).to_vector<std::int64_t>()[0];
  EXPECT_EQ(code, ops::bad_label_code(3, -1));
  EXPECT_EQ(ops::bad_label_message("op", code, 5),
            "op: label -1 at index 3 is out of range for 5 classes");
  // A good batch resets it.
  const Tensor good = on_gpu(Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, 3, 4, 0}, {6}));
  ops::softmax_cross_entropy_forward(logits, good, probs, loss, p);
  EXPECT_EQ(p.label_check.to(Device::cpu()).to_vector<std::int64_t>()[0], ops::kNoBadLabel);
  const CrossEntropyResults cpu = cpu_cross_entropy(on_cpu(logits), on_cpu(good), 1.0f, {});
  EXPECT_LE(testing::norm_relative_error(loss.to(Device::cpu()), cpu.loss), kTol);
}

TEST(CudaCrossEntropy, BadArgumentsAreClearErrors) {
  RUCHE_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  Tensor logits = Tensor::zeros({4, 10}, DType::f32, gpu);
  Tensor probs = Tensor::zeros({4, 10}, DType::f32, gpu);
  Tensor loss = Tensor::zeros({1}, DType::f32, gpu);
  Tensor labels = Tensor::zeros({4}, DType::i32, gpu);
  const char* fwd = "softmax_cross_entropy_forward";
  const char* bwd = "softmax_cross_entropy_backward";
  Tensor labels_f32 = Tensor::zeros({4}, DType::f32, gpu);
  expect_error([&] { ops::softmax_cross_entropy_forward(logits, labels_f32, probs, loss, {}); },
               {fwd, "labels", "i32"});
  Tensor labels5 = Tensor::zeros({5}, DType::i32, gpu);
  expect_error([&] { ops::softmax_cross_entropy_forward(logits, labels5, probs, loss, {}); },
               {fwd, "labels must be [4]"});
  Tensor loss2 = Tensor::zeros({2}, DType::f32, gpu);
  expect_error([&] { ops::softmax_cross_entropy_forward(logits, labels, probs, loss2, {}); },
               {fwd, "loss", "one element"});
  ops::CrossEntropyParams weighted;
  weighted.class_weights = Tensor::zeros({9}, DType::f32, gpu);
  expect_error([&] { ops::softmax_cross_entropy_forward(logits, labels, probs, loss, weighted); },
               {fwd, "class_weights must be [10]"});
  ops::CrossEntropyParams smoothed;
  smoothed.label_smoothing = 1.5f;
  expect_error([&] { ops::softmax_cross_entropy_backward(probs, labels, probs, 1.0f, smoothed); },
               {bwd, "label_smoothing", "1.5"});
  Tensor logits3 = Tensor::zeros({4, 10, 1}, DType::f32, gpu);
  expect_error([&] { ops::softmax_cross_entropy_forward(logits3, labels, probs, loss, {}); },
               {fwd, "[N, C]"});
  Tensor probs_bf16 = Tensor::zeros({4, 10}, DType::bf16, gpu);
  expect_error([&] { ops::softmax_cross_entropy_forward(logits, labels, probs_bf16, loss, {}); },
               {fwd, "probs", "f32"});
  Tensor dlogits = Tensor::zeros({4, 9}, DType::f32, gpu);
  expect_error([&] { ops::softmax_cross_entropy_backward(probs, labels, dlogits, 1.0f, {}); },
               {bwd, "dlogits has shape [4, 9]"});
  Tensor host_labels = Tensor::zeros({4}, DType::i32);
  expect_error([&] { ops::softmax_cross_entropy_forward(logits, host_labels, probs, loss, {}); },
               {fwd, "different devices"});
}

}  // namespace
}  // namespace ruche
