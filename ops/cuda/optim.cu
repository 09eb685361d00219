// The optimizer's ops on CUDA: the fused update (one launch over every range, the element formula
// of ops/optimizer_update.h), LARS trust ratios computed on the device, and the sum of squares with
// its finiteness flag. Reductions are deterministic: fixed chunks, fixed block trees, doubles.
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/tensor/allocator.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/handles.h"
#include "ops/cuda/host_wait.h"
#include "ops/cuda/kernel_util.h"
#include "ops/optimizer_update.h"
#include "ops/op_checks.h"

namespace ruche::ops::gpu {
namespace {

// Each range is cut into chunks of at most kChunk elements, one block each: a block knows its
// range without searching, and the LARS sums are per chunk, then per range, in a fixed order.
constexpr std::int64_t kChunk = 8192;

struct Chunk {
  std::int64_t begin, end;
  int range;
};

struct RangeChunks {
  int first_chunk, num_chunks;
  int adapt;  // lars: 1 when the range takes a trust ratio
};

// A device array that grows (from the caching allocator) and is never shrunk.
template <typename T>
struct DeviceArray {
  T* data = nullptr;
  std::size_t capacity = 0;  // elements

  void reserve(int device, std::size_t n) {
    if (n <= capacity) return;
    Allocator& allocator = cuda_allocator(device);
    // Work queued on the old block runs before any later user of it (one stream, in order).
    if (data) allocator.deallocate(data, capacity * sizeof(T));
    data = static_cast<T*>(allocator.allocate(n * sizeof(T)));
    capacity = n;
  }
};

// What optimizer_update keeps per device: the chunk table for the last ranges it saw (uploaded
// again only when they change), the per-step constants (uploaded every call from a page-locked
// staging buffer, asynchronously), and the LARS per-chunk sums. One caller per device at a time
// (a rank's training loop), as for every op on the one stream.
struct UpdateTable {
  std::vector<UpdateRange> ranges;  // the ranges the chunk table was built for
  bool built = false;
  int num_chunks = 0;
  DeviceArray<Chunk> chunks;
  DeviceArray<RangeChunks> range_chunks;
  DeviceArray<RangeStep> steps;
  DeviceArray<double> partials;  // lars: sum p^2, sum g^2 per chunk
  RangeStep* staging = nullptr;  // page-locked host copy of the steps
  std::size_t staging_capacity = 0;
  cudaEvent_t staging_free = nullptr;  // recorded after the copy out of `staging`
  bool staging_in_flight = false;
};

// Never destroyed: the CUDA runtime may be gone by the time static destructors run.
UpdateTable& table_for_device(int device) {
  static std::mutex mutex;
  static auto* tables = new std::unordered_map<int, std::unique_ptr<UpdateTable>>();
  std::lock_guard<std::mutex> lock(mutex);
  auto& t = (*tables)[device];
  if (!t) t = std::make_unique<UpdateTable>();
  return *t;
}

bool same_ranges(const std::vector<UpdateRange>& a, std::span<const UpdateRange> b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].begin != b[i].begin || a[i].end != b[i].end || a[i].adapt != b[i].adapt) return false;
  }
  return true;
}

// Rebuilds and uploads the chunk table when the ranges differ from the last call's (rarely: an
// optimizer's ranges are fixed). Waits for the copy: the host vectors are freed on return.
void build_chunks(UpdateTable& t, int device, std::span<const UpdateRange> ranges,
                  cudaStream_t stream) {
  if (t.built && same_ranges(t.ranges, ranges)) return;
  std::vector<Chunk> chunks;
  std::vector<RangeChunks> range_chunks;
  for (std::size_t r = 0; r < ranges.size(); ++r) {
    const int first = static_cast<int>(chunks.size());
    for (std::int64_t b = ranges[r].begin; b < ranges[r].end; b += kChunk) {
      chunks.push_back({b, std::min(b + kChunk, ranges[r].end), static_cast<int>(r)});
    }
    range_chunks.push_back(
        {first, static_cast<int>(chunks.size()) - first, ranges[r].adapt ? 1 : 0});
  }
  t.chunks.reserve(device, chunks.size());
  t.range_chunks.reserve(device, range_chunks.size());
  t.partials.reserve(device, 2 * chunks.size());
  if (!chunks.empty()) {
    CUDA_CHECK(cudaMemcpyAsync(t.chunks.data, chunks.data(), chunks.size() * sizeof(Chunk),
                               cudaMemcpyHostToDevice, stream));
  }
  if (!range_chunks.empty()) {
    CUDA_CHECK(cudaMemcpyAsync(t.range_chunks.data, range_chunks.data(),
                               range_chunks.size() * sizeof(RangeChunks), cudaMemcpyHostToDevice,
                               stream));
  }
  // No wait: a copy from pageable memory returns once the bytes are staged, so the vectors may go.
  t.ranges.assign(ranges.begin(), ranges.end());
  t.num_chunks = static_cast<int>(chunks.size());
  t.built = true;
}

// Copies this call's steps to the device without waiting for the copy.
void upload_steps(UpdateTable& t, int device, std::span<const RangeStep> steps,
                  cudaStream_t stream) {
  if (steps.empty()) return;
  if (!t.staging_free) t.staging_free = waitable_event();
  // The previous call's copy must have left the staging buffer before it is overwritten. It
  // normally has (the step's read-back waited for later work): a query, not a wait.
  if (t.staging_in_flight) {
    const cudaError_t status = cudaEventQuery(t.staging_free);
    if (status == cudaErrorNotReady) {
      wait_event(t.staging_free);
    } else {
      CUDA_CHECK(status);
    }
  }
  if (t.staging_capacity < steps.size()) {
    if (t.staging) CUDA_CHECK(cudaFreeHost(t.staging));
    void* p = nullptr;
    CUDA_CHECK(cudaHostAlloc(&p, steps.size() * sizeof(RangeStep), cudaHostAllocPortable));
    t.staging = static_cast<RangeStep*>(p);
    t.staging_capacity = steps.size();
  }
  t.steps.reserve(device, steps.size());
  std::memcpy(t.staging, steps.data(), steps.size() * sizeof(RangeStep));
  CUDA_CHECK(cudaMemcpyAsync(t.steps.data, t.staging, steps.size() * sizeof(RangeStep),
                             cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaEventRecord(t.staging_free, stream));
  t.staging_in_flight = true;
}

// LARS, pass 1: per chunk of an adapting range, sum p^2 and sum g^2 in double.
__global__ void lars_chunk_sums(const Chunk* chunks, const RangeChunks* range_chunks,
                                const float* params, const float* grads, double* partials) {
  __shared__ double shared[32];
  const Chunk ch = chunks[blockIdx.x];
  double pp = 0.0, gg = 0.0;
  if (range_chunks[ch.range].adapt) {  // the same for the whole block
    for (std::int64_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x) {
      const double p = params[i], g = grads[i];
      pp += p * p;
      gg += g * g;
    }
  }
  pp = block_reduce(pp, shared, SumOp{});
  gg = block_reduce(gg, shared, SumOp{});
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = pp;
    partials[2 * blockIdx.x + 1] = gg;
  }
}

// LARS, pass 2: block r adds range r's chunk sums in a fixed tree and writes its trust ratio.
__global__ void lars_ratios(const RangeChunks* range_chunks, const double* partials, float trust,
                            RangeStep* steps) {
  __shared__ double shared[32];
  const RangeChunks rc = range_chunks[blockIdx.x];
  double pp = 0.0, gg = 0.0;
  for (int k = threadIdx.x; k < rc.num_chunks; k += blockDim.x) {
    pp += partials[2 * (rc.first_chunk + k)];
    gg += partials[2 * (rc.first_chunk + k) + 1];
  }
  pp = block_reduce(pp, shared, SumOp{});
  gg = block_reduce(gg, shared, SumOp{});
  if (threadIdx.x == 0) {
    RangeStep& s = steps[blockIdx.x];
    s.ratio = rc.adapt ? lars_trust_ratio(sqrt(pp), sqrt(gg), s.weight_decay, trust) : 1.0f;
  }
}

// The update: block b applies optimizer K to chunk b with its range's constants.
template <OptimizerKind K>
__global__ void update_kernel(const Chunk* chunks, const RangeStep* steps, OptimizerHyper hyper,
                              float bias_correction2_sqrt, float* params, const float* grads,
                              float* slot0, float* slot1) {
  const Chunk ch = chunks[blockIdx.x];
  const RangeStep c = steps[ch.range];
  for (std::int64_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x) {
    float p = params[i];
    float s0 = slot0 ? slot0[i] : 0.0f, s1 = slot1 ? slot1[i] : 0.0f;
    optimizer_element<K>(hyper, c, bias_correction2_sqrt, p, grads[i], slot0 ? &s0 : nullptr,
                         slot1 ? &s1 : nullptr);
    params[i] = p;
    if (slot0) slot0[i] = s0;
    if (slot1) slot1[i] = s1;
  }
}

template <OptimizerKind K>
void launch_update(const UpdateTable& t, const OptimizerStep& step, float* params,
                   const float* grads, float* slot0, float* slot1, cudaStream_t stream) {
  update_kernel<K><<<static_cast<unsigned>(t.num_chunks), kThreads, 0, stream>>>(
      t.chunks.data, t.steps.data, step.hyper, step.bias_correction2_sqrt, params, grads, slot0,
      slot1);
  CUDA_CHECK_LAUNCH(update_kernel);
}

// ---- sum of squares and finiteness ----
constexpr unsigned kPartials = 1024;  // at most this many blocks in the first pass

// Per block: sum x^2 and the count of non-finite values, both in double.
__global__ void squares_partials(std::int64_t n, const float* x, double* partials) {
  __shared__ double shared[32];
  double sum = 0.0, bad = 0.0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float v = x[i];
    sum += static_cast<double>(v) * v;
    if (!isfinite(v)) bad += 1.0;
  }
  sum = block_reduce(sum, shared, SumOp{});
  bad = block_reduce(bad, shared, SumOp{});
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = sum;
    partials[2 * blockIdx.x + 1] = bad;
  }
}

__global__ void squares_total(unsigned count, const double* partials, double* out) {
  __shared__ double shared[32];
  double sum = 0.0, bad = 0.0;
  for (unsigned i = threadIdx.x; i < count; i += blockDim.x) {
    sum += partials[2 * i];
    bad += partials[2 * i + 1];
  }
  sum = block_reduce(sum, shared, SumOp{});
  bad = block_reduce(bad, shared, SumOp{});
  if (threadIdx.x == 0) {
    out[0] = sum;
    out[1] = bad;
  }
}

}  // namespace

void optimizer_update(const OptimizerStep& step, Tensor& params, const Tensor& grads, Tensor& slot0,
                      Tensor& slot1) {
  check_optimizer_update(step, params, grads, slot0, slot1);
  check_arg(params, "optimizer_update", "params");
  check_arg(grads, "optimizer_update", "grads");
  use_device_of(params);
  const int device = params.device().index;
  const cudaStream_t stream = current_stream();
  UpdateTable& t = table_for_device(device);
  build_chunks(t, device, step.ranges, stream);
  if (t.num_chunks == 0) return;
  upload_steps(t, device, step.steps, stream);
  float* p = params.data<float>();
  const float* g = grads.data<float>();
  float* s0 = uses_slot0(step.kind, step.hyper) ? slot0.data<float>() : nullptr;
  float* s1 = uses_slot1(step.kind, step.hyper) ? slot1.data<float>() : nullptr;
  const auto blocks = static_cast<unsigned>(t.num_chunks);
  switch (step.kind) {
    case OptimizerKind::sgd:
      return launch_update<OptimizerKind::sgd>(t, step, p, g, s0, s1, stream);
    case OptimizerKind::adam:
      return launch_update<OptimizerKind::adam>(t, step, p, g, s0, s1, stream);
    case OptimizerKind::adamw:
      return launch_update<OptimizerKind::adamw>(t, step, p, g, s0, s1, stream);
    case OptimizerKind::rmsprop:
      return launch_update<OptimizerKind::rmsprop>(t, step, p, g, s0, s1, stream);
    case OptimizerKind::lars:
      lars_chunk_sums<<<blocks, kThreads, 0, stream>>>(t.chunks.data, t.range_chunks.data, p, g,
                                                       t.partials.data);
      CUDA_CHECK_LAUNCH(lars_chunk_sums);
      lars_ratios<<<static_cast<unsigned>(step.ranges.size()), kThreads, 0, stream>>>(
          t.range_chunks.data, t.partials.data, step.hyper.trust, t.steps.data);
      CUDA_CHECK_LAUNCH(lars_ratios);
      return launch_update<OptimizerKind::lars>(t, step, p, g, s0, s1, stream);
  }
  RUCHE_FAIL() << "optimizer_update: unknown optimizer kind " << static_cast<int>(step.kind);
}

void sum_squares_finite(const Tensor& x, std::int64_t count, Tensor& out) {
  constexpr const char* op = "sum_squares_finite";
  check_sum_squares_finite(x, count, out);
  check_arg(x, op, "x");
  check_arg(out, op, "out", DType::i64);
  use_device_of(x);
  const cudaStream_t stream = current_stream();
  auto* total = reinterpret_cast<double*>(out.data<std::int64_t>());
  if (count == 0) {  // two zero doubles are all-zero bits
    CUDA_CHECK(cudaMemsetAsync(total, 0, 2 * sizeof(double), stream));
    return;
  }
  // The grid depends only on count: the same tree, hence the same bits, every time. The partials
  // live in the workspace, which later work on this stream may reuse: it runs after these kernels.
  const unsigned blocks = std::min<unsigned>(blocks_for(count), kPartials);
  auto* partials = static_cast<double*>(workspace(2 * blocks * sizeof(double)));
  squares_partials<<<blocks, kThreads, 0, stream>>>(count, x.data<float>(), partials);
  CUDA_CHECK_LAUNCH(squares_partials);
  squares_total<<<1, kThreads, 0, stream>>>(blocks, partials, total);
  CUDA_CHECK_LAUNCH(squares_total);
}

}  // namespace ruche::ops::gpu
