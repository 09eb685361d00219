// The bias of the CUDA linear layer: the add after the forward product and the column sums of the
// output gradient. Ours rather than cuBLAS's (a gemv with a ones vector) so that db comes from a
// fixed summation order whatever cuBLAS picks.
#include <cstdint>

#include "ops/cuda/float_types.cuh"
#include "ops/cuda/kernel_util.h"
#include "ops/cuda/linear_bias.h"

namespace ruche::ops::gpu {
namespace {

template <typename Y, typename B>
__global__ void add_bias_kernel(std::int64_t rows, std::int64_t cols, const B* b, Y* y) {
  const std::int64_t n = rows * cols;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    y[i] = from_float<Y>(to_float(y[i]) + to_float(b[i % cols]));
  }
}

// A block covers 32 adjacent columns (coalesced reads of a row) with 8 row groups; group g sums
// rows g, g + 8, g + 16, ... in order, then thread (0, c) adds the 8 group sums in order.
constexpr int kSumColumns = 32;
constexpr int kSumRowGroups = 8;

template <typename G, typename D>
__global__ void sum_rows_kernel(std::int64_t rows, std::int64_t cols, const G* dy, D* db) {
  __shared__ float partial[kSumRowGroups][kSumColumns];
  const std::int64_t col = static_cast<std::int64_t>(blockIdx.x) * kSumColumns + threadIdx.x;
  float sum = 0.0f;
  if (col < cols) {
    for (std::int64_t r = threadIdx.y; r < rows; r += kSumRowGroups) {
      sum += to_float(dy[r * cols + col]);
    }
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float total = 0.0f;
    for (int g = 0; g < kSumRowGroups; ++g) total += partial[g][threadIdx.x];
    db[col] = from_float<D>(total);
  }
}

}  // namespace

void add_bias_to_rows(const Tensor& b, Tensor& y, cudaStream_t stream) {
  const std::int64_t rows = y.size(0), cols = y.size(1);
  if (rows == 0 || cols == 0) return;
  visit_float_dtype(y.dtype(), [&](auto y_type) {
    using Y = decltype(y_type);
    visit_float_dtype(b.dtype(), [&](auto b_type) {
      using B = decltype(b_type);
      add_bias_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(
          rows, cols, static_cast<const B*>(b.raw_data()), static_cast<Y*>(y.raw_data()));
      CUDA_CHECK_LAUNCH(add_bias_kernel);
    });
  });
}

void sum_rows_into(const Tensor& dy, Tensor& db, cudaStream_t stream) {
  const std::int64_t rows = dy.size(0), cols = dy.size(1);
  if (cols == 0) return;
  const dim3 block(kSumColumns, kSumRowGroups);
  const auto blocks = static_cast<unsigned>((cols + kSumColumns - 1) / kSumColumns);
  visit_float_dtype(dy.dtype(), [&](auto dy_type) {
    using G = decltype(dy_type);
    visit_float_dtype(db.dtype(), [&](auto db_type) {
      using D = decltype(db_type);
      sum_rows_kernel<<<blocks, block, 0, stream>>>(
          rows, cols, static_cast<const G*>(dy.raw_data()), static_cast<D*>(db.raw_data()));
      CUDA_CHECK_LAUNCH(sum_rows_kernel);
    });
  });
}

}  // namespace ruche::ops::gpu
