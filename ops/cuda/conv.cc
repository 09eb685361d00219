// 2-d convolution on cuDNN's convolution API: forward, backward data, backward weights, NCHW or
// NHWC tensors (one layout for x and y of a call, from their tags) and OIHW weights (or, tagged
// nhwc, cuDNN's NHWC filter [O][KH][KW][I]) of f32, bf16 or f16 (fp32 compute), groups and
// dilation. The bias add and the bias gradient are our kernels (conv_bias.cu), so they work for
// every dtype and db is a fixed-order sum.
//
// One cache holds, per (device, shapes, parameters, dtype, GPU math settings), the cuDNN
// descriptors and the algorithm chosen for each direction, so cuDNN is asked once per shape.
// The choice (conv_choice.h): among the algorithms whose workspace fits
// gpu_math().workspace_limit, cuDNN's top-ranked one by its heuristic (the *_v7 calls), or with
// gpu_math().cudnn_benchmark the fastest as timed once by the Find*Ex calls (as
// torch.backends.cudnn.benchmark); with gpu_math().deterministic (--deterministic) the first
// deterministic one of the same order, so reruns give the same numbers (cudnn.deterministic).
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "ops/cuda/conv_bias.h"
#include "ops/cuda/conv_choice.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/handles.h"
#include "ops/cuda/kernel_util.h"
#include "ops/op_checks.h"

namespace ruche::ops::gpu {
namespace {

enum Direction : int { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };
constexpr const char* kDirectionNames[] = {"forward", "backward data", "backward weights"};

cudnnDataType_t cudnn_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return CUDNN_DATA_FLOAT;
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
    case DType::f16:
      return CUDNN_DATA_HALF;
    default:
      break;
  }
  RUCHE_FAIL() << "conv2d: no cuDNN type for " << dtype_name(dtype);
}

// Strict fp32 excludes TF32: CUDNN_FMA_MATH admits only FMA (non-tensor-core) kernels, while
// cuDNN's default math runs fp32 data as TF32 on Ampere and newer. Otherwise tensor cores are
// allowed; cuDNN then says per algorithm which math it uses.
bool strict_fp32(DType dtype, Precision precision) {
  return dtype == DType::f32 && precision == Precision::fp32;
}

// What a cached plan depends on. The math settings are part of it so that changing
// --precision, benchmark mode, --deterministic or the workspace limit never reuses a choice made
// under others.
struct ConvKey {
  int device = 0;
  std::array<std::int64_t, 4> x{}, w{};
  std::array<int, 7> params{};
  bool nhwc_data = false, nhwc_filter = false;  // the descriptors' formats
  DType dtype = DType::f32;
  Precision precision = Precision::fp32;
  bool benchmark = false;
  bool deterministic = false;
  std::size_t workspace_limit = 0;
  // clang-tidy 14 sees a literal 0 in a defaulted <=> (its bug, not ours).
  auto operator<=>(const ConvKey&) const = default;  // NOLINT(modernize-use-nullptr)
};

ConvKey make_key(const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  const GpuMath& math = gpu_math();
  ConvKey k;
  k.device = x.device().index;
  for (int i = 0; i < 4; ++i) {
    k.x[static_cast<std::size_t>(i)] = x.size(i);
    k.w[static_cast<std::size_t>(i)] = w.size(i);
  }
  k.params = {p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.groups};
  k.nhwc_data = x.layout() == Layout::nhwc;
  k.nhwc_filter = w.layout() == Layout::nhwc;
  k.dtype = x.dtype();
  k.precision = math.precision;
  k.benchmark = math.cudnn_benchmark;
  k.deterministic = math.deterministic;
  k.workspace_limit = math.workspace_limit;
  return k;
}

struct AlgorithmChoice {
  bool chosen = false;
  int algo = -1;  // the direction's cudnnConvolution*Algo_t
  std::size_t workspace = 0;
};

// Descriptors for one shape and the algorithms chosen for it. "y" is the convolution's output
// side (y in forward, dy in backward), "x" its input side (x, or dx), "w" the weight (w, or dw).
// One convolution descriptor per direction, since each carries its chosen algorithm's math type.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  std::array<cudnnConvolutionDescriptor_t, 3> conv{};
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // what the descriptors start with
  bool strict = true;
  std::array<AlgorithmChoice, 3> choice{};

  ConvPlan(const ConvKey& k, const Shape& y_shape) {
    const cudnnDataType_t type = cudnn_type(k.dtype);
    const auto i = [](std::int64_t v) { return static_cast<int>(v); };
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    // Dimensions are N, C, H, W (O, I, KH, KW) in either format; the format says their order.
    const cudnnTensorFormat_t data = k.nhwc_data ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    const cudnnTensorFormat_t filter = k.nhwc_filter ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(x, data, type, i(k.x[0]), i(k.x[1]), i(k.x[2]), i(k.x[3])));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, data, type, i(y_shape[0]), i(y_shape[1]),
                                           i(y_shape[2]), i(y_shape[3])));
    // k = output channels, c = input channels per group.
    CUDNN_CHECK(
        cudnnSetFilter4dDescriptor(w, type, filter, i(k.w[0]), i(k.w[1]), i(k.w[2]), i(k.w[3])));
    strict = strict_fp32(k.dtype, k.precision);
    math = strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    const auto& p = k.params;  // stride h w, pad h w, dilation h w, groups
    for (cudnnConvolutionDescriptor_t& c : conv) {
      CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&c));
      // PyTorch's convolution is cross-correlation; fp32 accumulation for every data type.
      CUDNN_CHECK(cudnnSetConvolution2dDescriptor(c, p[2], p[3], p[0], p[1], p[4], p[5],
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
      CUDNN_CHECK(cudnnSetConvolutionGroupCount(c, p[6]));
      CUDNN_CHECK(cudnnSetConvolutionMathType(c, math));
    }
  }
  ~ConvPlan() {
    for (cudnnConvolutionDescriptor_t c : conv) {
      if (c) cudnnDestroyConvolutionDescriptor(c);
    }
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
};

// The data a Find call runs on: the input side, the weight side and the output side of the
// direction (Find overwrites the direction's output, which the real call overwrites next).
struct ConvData {
  void* x = nullptr;
  void* w = nullptr;
  void* y = nullptr;
};

// The three directions' cuDNN calls behind one interface.
template <int D>
struct Algorithms;

template <>
struct Algorithms<kForward> {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static void rank(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c, Perf* perf,
                   int* n) {
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, c, p.y, kCount, n, perf));
  }
  static void time(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c,
                   const ConvData& d, Perf* perf, int* n, void* ws, std::size_t ws_bytes) {
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, p.x, d.x, p.w, d.w, c, p.y, d.y, kCount,
                                                       n, perf, ws, ws_bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c,
                                 int algo, std::size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(
        h, p.x, p.w, c, p.y, static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
  }
};

template <>
struct Algorithms<kBackwardData> {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static void rank(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c, Perf* perf,
                   int* n) {
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, c, p.x, kCount, n, perf));
  }
  static void time(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c,
                   const ConvData& d, Perf* perf, int* n, void* ws, std::size_t ws_bytes) {
    CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w, d.w, p.y, d.y, c, p.x, d.x,
                                                            kCount, n, perf, ws, ws_bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c,
                                 int algo, std::size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(
        h, p.w, p.y, c, p.x, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
  }
};

template <>
struct Algorithms<kBackwardWeights> {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static void rank(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c, Perf* perf,
                   int* n) {
    CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, c, p.w, kCount, n, perf));
  }
  static void time(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c,
                   const ConvData& d, Perf* perf, int* n, void* ws, std::size_t ws_bytes) {
    CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p.x, d.x, p.y, d.y, c, p.w, d.w,
                                                              kCount, n, perf, ws, ws_bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t c,
                                 int algo, std::size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, p.x, p.y, c, p.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
  }
};

// An algorithm cuDNN offered that may run here: it works for this shape, keeps strict fp32
// strict, and its workspace fits the limit.
struct Candidate {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  std::size_t workspace = 0;
  bool deterministic = false;
};

template <int D>
std::vector<Candidate> usable(cudnnHandle_t h, ConvPlan& plan,
                              const typename Algorithms<D>::Perf* perf, int n, std::size_t limit) {
  cudnnConvolutionDescriptor_t conv = plan.conv[D];
  std::vector<Candidate> out;
  for (int i = 0; i < n; ++i) {
    const auto& r = perf[i];
    if (r.status != CUDNN_STATUS_SUCCESS) continue;
    // ALLOW_CONVERSION lets cuDNN convert the data to f16 (range 6e-8 .. 65504): never what
    // --precision asks for (TF32 keeps fp32's exponent; bf16 data would lose range).
    if (r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    // Strict fp32: the descriptor stays on FMA math; an entry that reports tensor-core math is
    // skipped rather than trusted.
    if (plan.strict && r.mathType == CUDNN_TENSOR_OP_MATH) continue;
    const cudnnMathType_t math = plan.strict ? CUDNN_FMA_MATH : r.mathType;
    // The workspace as the call will see it (the ranking's memory field is an estimate).
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
    std::size_t bytes = 0;
    const cudnnStatus_t status =
        Algorithms<D>::workspace(h, plan, conv, static_cast<int>(r.algo), &bytes);
    if (status != CUDNN_STATUS_SUCCESS || bytes > limit) continue;
    out.push_back({static_cast<int>(r.algo), math, bytes, r.determinism == CUDNN_DETERMINISTIC});
  }
  CUDNN_CHECK(cudnnSetConvolutionMathType(conv, plan.math));
  return out;
}

// Holds the cache's lock (choices are made once per shape, Find runs there too).
template <int D>
void choose(ConvPlan& plan, const ConvData& data) {
  using A = Algorithms<D>;
  const GpuMath& math = gpu_math();
  const cudnnHandle_t h = cudnn_handle();
  cudnnConvolutionDescriptor_t conv = plan.conv[D];
  std::array<typename A::Perf, A::kCount> perf{};
  int n = 0;
  A::rank(h, plan, conv, perf.data(), &n);
  std::vector<Candidate> candidates = usable<D>(h, plan, perf.data(), n, math.workspace_limit);
  if (math.cudnn_benchmark && !candidates.empty()) {
    // Time them with as much workspace as the hungriest usable one needs (within the limit).
    std::size_t bytes = 0;
    for (const Candidate& c : candidates) bytes = std::max(bytes, c.workspace);
    void* ws = workspace(bytes);
    std::array<typename A::Perf, A::kCount> timed{};
    int timed_n = 0;
    A::time(h, plan, conv, data, timed.data(), &timed_n, ws, bytes);
    candidates = usable<D>(h, plan, timed.data(), timed_n, bytes);  // fastest first
  }
  const Candidate* pick = pick_convolution_algorithm(candidates, math.deterministic);
  RUCHE_REQUIRE(pick != nullptr) << "conv2d: cuDNN offers no "
                                 << (math.deterministic ? "deterministic " : "")
                                 << kDirectionNames[D] << " algorithm"
                                 << (plan.strict ? " in strict fp32 (FMA math)" : "")
                                 << " within the workspace limit of " << math.workspace_limit
                                 << " bytes for this shape (raise the workspace limit)";
  CUDNN_CHECK(cudnnSetConvolutionMathType(conv, pick->math));
  plan.choice[D] = {true, pick->algo, pick->workspace};
}

struct ConvCache {
  std::mutex mutex;
  std::map<ConvKey, std::unique_ptr<ConvPlan>> plans;
  std::uint64_t searches = 0;
};

// Never destroyed: descriptors must not outlive cuDNN at process teardown (as handles.cc).
ConvCache& cache() {
  static ConvCache* c = new ConvCache;
  return *c;
}

// The plan for this shape with direction D's algorithm chosen. Plans are never removed, so the
// reference stays valid; their descriptors are only read once the choice is made.
template <int D>
const ConvPlan& plan_for(const Tensor& x, const Tensor& w, const Shape& y, const Conv2dParams& p,
                         const ConvData& data) {
  ConvCache& c = cache();
  const ConvKey key = make_key(x, w, p);
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.plans.find(key);
  if (it == c.plans.end()) it = c.plans.emplace(key, std::make_unique<ConvPlan>(key, y)).first;
  ConvPlan* plan = it->second.get();
  if (!plan->choice[D].chosen) {
    choose<D>(*plan, data);
    ++c.searches;
  }
  return *plan;
}

bool is_float_type(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

// The device's per-tensor check: on a CUDA device, contiguous, of x's dtype.
constexpr TensorCheck kCheck = [](const char* op, const char* name, const Tensor& t,
                                  const Tensor& x) { check_arg(t, op, name, x.dtype()); };

// ops/op_checks.h's checks (x, w, y fit p; b, when given, is [O]) with every tensor of x's dtype
// (f32, bf16 or f16) on a CUDA device, and sizes cuDNN's descriptors can count.
void check_conv_args(const char* op, const Tensor& x, const char* x_name, const Tensor& w,
                     const char* w_name, const Tensor& y, const char* y_name, const Tensor& b,
                     const char* b_name, const Conv2dParams& p) {
  RUCHE_REQUIRE(x.defined()) << op << ": " << x_name << " is undefined";
  RUCHE_REQUIRE(is_float_type(x.dtype()))
      << op << ": " << x_name << " must be f32, bf16 or f16, got " << x.str();
  check_conv2d_args(op, x, x_name, w, w_name, y, y_name, b, b_name, p, kCheck);
  is_channels_last(w, op, w_name);
  RUCHE_CHECK(is_channels_last(x, op, x_name) == is_channels_last(y, op, y_name))
      << op << ": " << x_name << " " << x.str() << " and " << y_name << " " << y.str()
      << " in different layouts (the net's layout plan reorders one)";
  // cuDNN's 4-d descriptors count in int.
  for (const Tensor* t : {&x, &w, &y}) {
    RUCHE_REQUIRE(t->numel() <= INT_MAX)
        << op << ": " << t->str() << " has more elements than cuDNN's descriptors can address";
  }
}

constexpr float kOne = 1.0f, kZero = 0.0f;  // alpha and beta: float for every non-double type

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p) {
  constexpr const char* op = "conv2d_forward";
  check_conv_args(op, x, "x", w, "w", y, "y", b, "b", p);
  RUCHE_REQUIRE(!p.fused_relu) << op << ": a fused ReLU is a CPU net's fusion; run the ReLU";
  use_device_of(x);
  const ConvPlan& plan =
      plan_for<kForward>(x, w, y.shape(), p, {x.raw_data(), w.raw_data(), y.raw_data()});
  const AlgorithmChoice& a = plan.choice[kForward];
  CUDNN_CHECK(
      cudnnConvolutionForward(cudnn_handle(), &kOne, plan.x, x.raw_data(), plan.w, w.raw_data(),
                              plan.conv[kForward], static_cast<cudnnConvolutionFwdAlgo_t>(a.algo),
                              workspace(a.workspace), a.workspace, &kZero, plan.y, y.raw_data()));
  if (b.defined()) {
    add_channel_bias(y.dtype(), y.raw_data(), b.raw_data(), y.size(0), y.size(1),
                     y.size(2) * y.size(3), y.layout() == Layout::nhwc, current_stream());
  }
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dParams& p) {
  constexpr const char* op = "conv2d_backward_data";
  check_conv_args(op, dx, "dx", w, "w", dy, "dy", Tensor(), "", p);
  use_device_of(dx);
  const ConvPlan& plan =
      plan_for<kBackwardData>(dx, w, dy.shape(), p, {dx.raw_data(), w.raw_data(), dy.raw_data()});
  const AlgorithmChoice& a = plan.choice[kBackwardData];
  CUDNN_CHECK(cudnnConvolutionBackwardData(
      cudnn_handle(), &kOne, plan.w, w.raw_data(), plan.y, dy.raw_data(), plan.conv[kBackwardData],
      static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo), workspace(a.workspace), a.workspace,
      &kZero, plan.x, dx.raw_data()));
}

void conv2d_backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                             const Conv2dParams& p) {
  constexpr const char* op = "conv2d_backward_weights";
  check_conv_args(op, x, "x", dw, "dw", dy, "dy", db, "db", p);
  use_device_of(x);
  const ConvPlan& plan = plan_for<kBackwardWeights>(x, dw, dy.shape(), p,
                                                    {x.raw_data(), dw.raw_data(), dy.raw_data()});
  const AlgorithmChoice& a = plan.choice[kBackwardWeights];
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      cudnn_handle(), &kOne, plan.x, x.raw_data(), plan.y, dy.raw_data(),
      plan.conv[kBackwardWeights], static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo),
      workspace(a.workspace), a.workspace, &kZero, plan.w, dw.raw_data()));
  if (db.defined()) {
    channel_bias_gradient(dy.dtype(), dy.raw_data(), db.raw_data(), dy.size(0), dy.size(1),
                          dy.size(2) * dy.size(3), dy.layout() == Layout::nhwc, current_stream());
  }
}

std::size_t conv_algorithm_cache_size() {
  ConvCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.plans.size();
}

std::uint64_t conv_algorithm_searches() {
  ConvCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.searches;
}

ConvAlgorithms conv_algorithms(const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  RUCHE_REQUIRE(x.defined() && x.ndim() == 4 && w.defined() && w.ndim() == 4)
      << "conv_algorithms: x and w must be 4-d, got " << x.str() << " and " << w.str();
  ConvCache& c = cache();
  const ConvKey key = make_key(x, w, p);
  std::lock_guard<std::mutex> lock(c.mutex);
  const auto it = c.plans.find(key);
  ConvAlgorithms out;
  if (it == c.plans.end()) return out;
  const ConvPlan& plan = *it->second;
  out.cached = true;
  out.forward = plan.choice[kForward].algo;
  out.backward_data = plan.choice[kBackwardData].algo;
  out.backward_weights = plan.choice[kBackwardWeights].algo;
  out.forward_workspace = plan.choice[kForward].workspace;
  out.backward_data_workspace = plan.choice[kBackwardData].workspace;
  out.backward_weights_workspace = plan.choice[kBackwardWeights].workspace;
  return out;
}

}  // namespace ruche::ops::gpu
