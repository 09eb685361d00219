// Channels-last (Layout::nhwc) on CUDA, the layout a 16-bit net plans its convolution chains in:
// reorder and cast between plain and nhwc against the CPU's oneDNN reorder, and the cuDNN
// convolution on nhwc data and filters against the same convolution on NCHW.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/half_support.h"
#include "tests/gpu/nhwc_support.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::cast_to;
using testing::empty_gpu;
using testing::expect_same_elements;
using testing::gpu_as;
using testing::on_cpu;
using testing::on_gpu;
using testing::plain_values;
using testing::random_tensor;

// A tensor's elements in memory order, as f32 on the CPU (widening is exact), whatever its tag.
Tensor memory_of(const Tensor& t) {
  return cast_to(on_cpu(t).with_layout(Layout::plain), DType::f32);
}

// x (f32, CPU) reordered by oneDNN into `layout`.
Tensor cpu_in(const Tensor& x, Layout layout) {
  Tensor y = Tensor::empty(x.shape()).with_layout(layout);
  ops::reorder(x, y);
  return y;
}

constexpr DType kFloatTypes[] = {DType::f32, DType::bf16, DType::f16};

TEST(CudaLayout, ReorderPutsChannelsInnermostAsTheCpuDoes) {
  RUCHE_REQUIRE_CUDA();
  for (const Shape& shape : {Shape{2, 5, 3, 4}, Shape{6, 3, 3, 3}, Shape{3, 64, 1, 1}}) {
    const Tensor x = random_tensor(shape, 1);
    const Tensor expected = cpu_in(x, Layout::nhwc).with_layout(Layout::plain);
    for (DType dtype : kFloatTypes) {
      SCOPED_TRACE(shape.str() + " " + std::string(dtype_name(dtype)));
      const Tensor values = cast_to(x, dtype);
      Tensor nhwc = empty_gpu(shape, dtype).with_layout(Layout::nhwc);
      ops::reorder(on_gpu(values), nhwc);
      expect_same_elements(memory_of(nhwc), cast_to(cast_to(expected, dtype), DType::f32));
      Tensor back = empty_gpu(shape, dtype);
      ops::reorder(nhwc, back);
      expect_same_elements(memory_of(back), cast_to(values, DType::f32));
    }
  }
}

// A 16-bit nhwc convolution's weight copy is cast from the plain f32 master, and its gradient
// back, in one pass each way.
TEST(CudaLayout, CastChangesTheLayoutInTheSamePass) {
  RUCHE_REQUIRE_CUDA();
  const Tensor w = random_tensor({16, 8, 3, 3}, 2);
  const Tensor w_nhwc = cpu_in(w, Layout::nhwc).with_layout(Layout::plain);
  for (DType dtype : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dtype));
    Tensor copy = empty_gpu(w.shape(), dtype).with_layout(Layout::nhwc);
    ops::cast(on_gpu(w), copy);
    EXPECT_EQ(copy.layout(), Layout::nhwc);
    expect_same_elements(memory_of(copy), cast_to(cast_to(w_nhwc, dtype), DType::f32));
    Tensor master = empty_gpu(w.shape());
    ops::cast(copy, master);
    expect_same_elements(memory_of(master), cast_to(cast_to(w, dtype), DType::f32));
  }
}

TEST(CudaLayout, OpsRefuseTheCpusBlockedLayouts) {
  RUCHE_REQUIRE_CUDA();
  const Tensor x = empty_gpu({1, 8, 2, 2}).with_layout(Layout::nChw8c);
  Tensor y = empty_gpu({1, 8, 2, 2});
  EXPECT_THROW(ops::reorder(x, y), InternalError);
}

// Forward, backward data and backward weights with bias on nhwc data and filters against NCHW, in
// the 16-bit types the plan uses them for. Both sides sum in f32 and round once to 16 bits, in
// other orders: a few 16-bit ulps.
TEST(CudaLayout, ConvolutionOnNhwcMatchesNchw) {
  RUCHE_REQUIRE_CUDA();
  for (const int stride : {1, 2}) {
    ops::Conv2dParams p;
    p.stride_h = p.stride_w = stride;
    p.pad_h = p.pad_w = 1;
    const Shape xs{2, 8, 9, 7}, ws{16, 8, 3, 3};
    const Shape ys = ops::conv2d_output_shape(xs, ws, p);
    const Tensor x = random_tensor(xs, 3), w = random_tensor(ws, 4), b = random_tensor({16}, 5);
    const Tensor dy = random_tensor(ys, 6);
    for (DType dtype : {DType::bf16, DType::f16}) {
      SCOPED_TRACE("stride " + std::to_string(stride) + " " + std::string(dtype_name(dtype)));
      const double tol = dtype == DType::bf16 ? 1e-2 : 2e-3;
      struct Result {
        Tensor y, dx, dw, db;
      };
      const auto run = [&](Layout layout) {
        const Tensor xg = gpu_as(x, dtype, layout), wg = gpu_as(w, dtype, layout);
        const Tensor bg = gpu_as(b, dtype, Layout::plain), dyg = gpu_as(dy, dtype, layout);
        Tensor y = empty_gpu(ys, dtype).with_layout(layout);
        Tensor dx = empty_gpu(xs, dtype).with_layout(layout);
        Tensor dw = empty_gpu(ws, dtype).with_layout(layout), db = empty_gpu({16}, dtype);
        ops::conv2d_forward(xg, wg, bg, y, p);
        ops::conv2d_backward_data(dyg, wg, dx, p);
        ops::conv2d_backward_weights(xg, dyg, dw, db, p);
        return Result{plain_values(y), plain_values(dx), plain_values(dw), plain_values(db)};
      };
      const Result nchw = run(Layout::plain), nhwc = run(Layout::nhwc);
      EXPECT_TENSORS_CLOSE(nhwc.y, nchw.y, tol);
      EXPECT_TENSORS_CLOSE(nhwc.dx, nchw.dx, tol);
      EXPECT_TENSORS_CLOSE(nhwc.dw, nchw.dw, tol);
      EXPECT_TENSORS_CLOSE(nhwc.db, nchw.db, tol);
    }
  }
}

// Concat along the channels of nhwc data: each part's channels land at their offset in every
// pixel, and the gradient's split takes them back.
TEST(CudaLayout, ConcatCopiesChannelsOfEveryPixel) {
  RUCHE_REQUIRE_CUDA();
  const Tensor a = random_tensor({2, 3, 4, 5}, 7), b = random_tensor({2, 6, 4, 5}, 8);
  for (DType dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const auto join = [&](Layout layout) {
      Tensor whole = empty_gpu({2, 9, 4, 5}, dtype).with_layout(layout);
      ops::copy_into_axis(gpu_as(a, dtype, layout), whole, 1, 0);
      ops::copy_into_axis(gpu_as(b, dtype, layout), whole, 1, 3);
      Tensor back = empty_gpu({2, 6, 4, 5}, dtype).with_layout(layout);
      ops::copy_from_axis(whole, back, 1, 3);
      return std::pair{plain_values(whole), plain_values(back)};
    };
    const auto [nhwc_whole, nhwc_back] = join(Layout::nhwc);
    const auto [plain_whole, plain_back] = join(Layout::plain);
    expect_same_elements(nhwc_whole, plain_whole);
    expect_same_elements(nhwc_back, plain_back);
    expect_same_elements(nhwc_back, cast_to(cast_to(b, dtype), DType::f32));
  }
}

TEST(CudaLayout, ConvolutionRefusesDataInTwoLayouts) {
  RUCHE_REQUIRE_CUDA();
  ops::Conv2dParams p;
  const Tensor x = empty_gpu({1, 8, 4, 4}, DType::bf16);
  const Tensor w = empty_gpu({8, 8, 1, 1}, DType::bf16).with_layout(Layout::nhwc);
  Tensor y = empty_gpu({1, 8, 4, 4}, DType::bf16).with_layout(Layout::nhwc);
  EXPECT_THROW(ops::conv2d_forward(x, w, Tensor(), y, p), InternalError);
}

}  // namespace
}  // namespace ruche
