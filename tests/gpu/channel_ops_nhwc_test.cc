// Channels-last (Layout::nhwc) data in the per-channel CUDA ops: batch norm (cuDNN for f32 / f16,
// our kernels for bf16 and the synchronized pieces) and a convolution's bias add and gradient
// (ops/cuda/conv_bias.h). Each op runs on nhwc tensors and on plain ones holding the same values,
// and the results are compared at the same (n, c, h, w). Our kernels visit a channel's values in
// the same order in both layouts (channel_reduction.h), so they must agree bit for bit; cuDNN's
// NHWC kernels reduce in their own order, so they agree within a tolerance. Tensors move between
// layouts on the CPU (oneDNN's reorder, in f32), so nothing here leans on CUDA's own reorder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"
#include "ops/cuda/conv_bias.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/ops.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/half_support.h"
#include "tests/gpu/nhwc_support.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::empty_gpu;
using testing::gpu_as;
using testing::internal_error_of;
using testing::on_cpu;
using testing::on_gpu;
using testing::plain_values;
using testing::random_tensor;

const Device kGpu = Device::cuda(0);

// Odd sizes; more values per channel than a block's threads; few channels and many images (the
// reductions split a channel into chunks); a 1 x 1 plane; a wide layer.
const Shape kShapes[] = {
    {3, 5, 7, 9}, {8, 3, 64, 65}, {256, 4, 7, 7}, {6, 16, 1, 1}, {2, 96, 5, 3}};

Tensor empty_gpu_in(const Shape& shape, DType dtype, Layout layout) {
  return empty_gpu(shape, dtype).with_layout(layout);
}

// Every element of the nhwc run's result equals the plain run's at the same (n, c, h, w).
void expect_same_values(const Tensor& nhwc_run, const Tensor& plain_run, const std::string& what) {
  EXPECT_EQ(nhwc_run.layout(), Layout::nhwc) << what;
  EXPECT_EQ(plain_run.layout(), Layout::plain) << what;
  testing::expect_same_at_every_element<float>(nhwc_run, plain_run, what);
}

// Per-channel f32 results (statistics, gradients of gamma / beta) of the two runs, bit for bit.
void expect_same_floats(const Tensor& nhwc_run, const Tensor& plain_run, const std::string& what) {
  SCOPED_TRACE(what + " (nhwc run against plain run)");
  testing::expect_same_elements(on_cpu(nhwc_run), on_cpu(plain_run));
}

// ---- batch norm ----

// The statistics one run writes, on the GPU; running ones start away from 0 / 1.
struct Stats {
  Tensor running_mean, running_var, save_mean, save_var;
  explicit Stats(std::int64_t c) {
    Tensor rm = Tensor::empty({c}), rv = Tensor::empty({c});
    rm.fill(0.25f);
    rv.fill(1.5f);
    running_mean = on_gpu(rm);
    running_var = on_gpu(rv);
    save_mean = empty_gpu({c});
    save_var = empty_gpu({c});
  }
};

// Training forward, inference and backward of one shape and dtype in one layout.
struct BatchNormRun {
  Stats stats;
  Tensor y, y_inference, dx, dgamma, dbeta;

  BatchNormRun(const Tensor& x_values, const Tensor& dy_values, const Tensor& gamma,
               const Tensor& beta, DType dtype, Layout layout)
      : stats(x_values.size(1)) {
    const Shape& shape = x_values.shape();
    const std::int64_t c = shape[1];
    ops::BatchNormParams p;
    p.momentum = 0.3f;
    const Tensor x = gpu_as(x_values, dtype, layout), dy = gpu_as(dy_values, dtype, layout);
    y = empty_gpu_in(shape, dtype, layout);
    ops::batch_norm_forward_training(x, gamma, beta, y, stats.running_mean, stats.running_var,
                                     stats.save_mean, stats.save_var, p);
    y_inference = empty_gpu_in(shape, dtype, layout);
    ops::batch_norm_forward_inference(x, gamma, beta, stats.running_mean, stats.running_var,
                                      y_inference, p);
    dx = empty_gpu_in(shape, dtype, layout);
    dgamma = empty_gpu({c});
    dbeta = empty_gpu({c});
    ops::batch_norm_backward(dy, x, gamma, stats.save_mean, stats.save_var, dx, dgamma, dbeta, p);
  }
};

struct Inputs {
  Tensor x, dy, gamma, beta;  // x, dy plain f32 on the CPU (values exact in 16 bits); gamma on GPU
};
Inputs inputs_for(const Shape& shape, DType dtype, std::uint32_t seed) {
  const std::int64_t c = shape[1];
  // Rounded to dtype first, so both layouts (and every dtype) see the same values.
  auto values = [&](std::uint32_t s, float low, float high) {
    return testing::cast_to(testing::cast_to(random_tensor(shape, s, low, high), dtype),
                            DType::f32);
  };
  return {values(seed, -1.0f, 3.0f), values(seed + 1, -1.0f, 1.0f),
          on_gpu(random_tensor({c}, seed + 2, 0.5f, 1.5f)), on_gpu(random_tensor({c}, seed + 3))};
}

// bf16 runs on our kernels (batch_norm.cc): nhwc must equal plain bit for bit.
TEST(CudaBatchNormNhwc, Bf16OnOwnKernelsEqualsPlainBitForBit) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 900;
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE("bf16 " + shape.str());
    const Inputs in = inputs_for(shape, DType::bf16, seed += 10);
    const BatchNormRun nhwc(in.x, in.dy, in.gamma, in.beta, DType::bf16, Layout::nhwc);
    const BatchNormRun plain(in.x, in.dy, in.gamma, in.beta, DType::bf16, Layout::plain);
    expect_same_floats(nhwc.stats.save_mean, plain.stats.save_mean, "save_mean");
    expect_same_floats(nhwc.stats.save_var, plain.stats.save_var, "save_var");
    expect_same_floats(nhwc.stats.running_mean, plain.stats.running_mean, "running_mean");
    expect_same_floats(nhwc.stats.running_var, plain.stats.running_var, "running_var");
    expect_same_values(nhwc.y, plain.y, "training y");
    expect_same_values(nhwc.y_inference, plain.y_inference, "inference y");
    expect_same_values(nhwc.dx, plain.dx, "dx");
    expect_same_floats(nhwc.dgamma, plain.dgamma, "dgamma");
    expect_same_floats(nhwc.dbeta, plain.dbeta, "dbeta");
  }
}

// f32 and f16 run on cuDNN with an NHWC descriptor: the same results as NCHW within the
// reductions' rounding (norm-relative), and 16-bit outputs within a rounding or two.
TEST(CudaBatchNormNhwc, CudnnNhwcMatchesPlain) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 1000;
  for (const DType dtype : {DType::f32, DType::f16}) {
    const double data_tol = dtype == DType::f32 ? 1e-5 : 2e-3;  // f16: a rounding here and there
    const double dx_tol = dtype == DType::f32 ? 1e-4 : 2e-3;    // as batch_norm_test.cc's
    const double stats_tol = 1e-4;  // f32 per-channel sums in cuDNN's order, either layout
    for (const Shape& shape : kShapes) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape.str());
      const Inputs in = inputs_for(shape, dtype, seed += 10);
      const BatchNormRun nhwc(in.x, in.dy, in.gamma, in.beta, dtype, Layout::nhwc);
      const BatchNormRun plain(in.x, in.dy, in.gamma, in.beta, dtype, Layout::plain);
      EXPECT_EQ(nhwc.y.layout(), Layout::nhwc);
      EXPECT_TENSORS_CLOSE(on_cpu(nhwc.stats.save_mean), on_cpu(plain.stats.save_mean), stats_tol);
      EXPECT_TENSORS_CLOSE(on_cpu(nhwc.stats.save_var), on_cpu(plain.stats.save_var), stats_tol);
      EXPECT_TENSORS_CLOSE(on_cpu(nhwc.stats.running_mean), on_cpu(plain.stats.running_mean),
                           stats_tol);
      EXPECT_TENSORS_CLOSE(on_cpu(nhwc.stats.running_var), on_cpu(plain.stats.running_var),
                           stats_tol);
      EXPECT_TENSORS_CLOSE(plain_values(nhwc.y), plain_values(plain.y), data_tol) << "training y";
      EXPECT_TENSORS_CLOSE(plain_values(nhwc.y_inference), plain_values(plain.y_inference),
                           data_tol)
          << "inference y";
      EXPECT_TENSORS_CLOSE(plain_values(nhwc.dx), plain_values(plain.dx), dx_tol) << "dx";
      EXPECT_TENSORS_CLOSE(on_cpu(nhwc.dgamma), on_cpu(plain.dgamma), stats_tol) << "dgamma";
      EXPECT_TENSORS_CLOSE(on_cpu(nhwc.dbeta), on_cpu(plain.dbeta), stats_tol) << "dbeta";
    }
  }
}

// The synchronized batch norm's pieces (called directly: the net keeps --sync-bn plain, so the
// dispatch takes plain tensors only) on nhwc data equal the plain ones bit for bit.
TEST(CudaBatchNormNhwc, SyncPiecesEqualPlainBitForBit) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 1100;
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const Shape& shape : kShapes) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape.str());
      const std::int64_t c = shape[1];
      const Inputs in = inputs_for(shape, dtype, seed += 10);
      ops::BatchNormParams p;
      struct Run {
        Tensor stats, sums, dgamma, dbeta, dx;
      };
      auto run = [&](Layout layout) {
        const Tensor x = gpu_as(in.x, dtype, layout), dy = gpu_as(in.dy, dtype, layout);
        Run r{empty_gpu({2 * c + 1}), empty_gpu({2 * c + 1}), empty_gpu({c}), empty_gpu({c}),
              empty_gpu_in(shape, dtype, layout)};
        ops::gpu::batch_norm_local_stats(x, r.stats);
        Stats m(c);
        ops::gpu::batch_norm_stats_to_moments(r.stats, m.running_mean, m.running_var, m.save_mean,
                                              m.save_var, p);
        ops::gpu::batch_norm_backward_reduce(dy, x, m.save_mean, m.save_var, r.sums, r.dgamma,
                                             r.dbeta, p);
        ops::gpu::batch_norm_backward_apply(dy, x, in.gamma, m.save_mean, m.save_var, r.sums, r.dx,
                                            p);
        return r;
      };
      const Run nhwc = run(Layout::nhwc), plain = run(Layout::plain);
      expect_same_floats(nhwc.stats, plain.stats, "local stats");
      expect_same_floats(nhwc.sums, plain.sums, "backward sums");
      expect_same_floats(nhwc.dgamma, plain.dgamma, "dgamma");
      expect_same_floats(nhwc.dbeta, plain.dbeta, "dbeta");
      expect_same_values(nhwc.dx, plain.dx, "dx");
    }
  }
}

TEST(CudaBatchNormNhwc, MixedOrCpuLayoutsAreRejected) {
  RUCHE_REQUIRE_CUDA();
  const Shape shape{2, 8, 3, 3};
  const std::int64_t c = shape[1];
  const Tensor values = random_tensor(shape, 1200);
  const Tensor x = gpu_as(values, DType::f32, Layout::nhwc);
  Stats m(c);
  Tensor none;
  ops::BatchNormParams p;
  for (const DType dtype : {DType::f32, DType::bf16}) {  // cuDNN's path and ours
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor xd = gpu_as(values, dtype, Layout::nhwc);
    const std::string mixed = internal_error_of([&] {
      Tensor y_plain = empty_gpu(shape, dtype);
      ops::batch_norm_forward_training(xd, none, none, y_plain, m.running_mean, m.running_var,
                                       m.save_mean, m.save_var, p);
    });
    EXPECT_NE(mixed.find("batch_norm_forward_training"), std::string::npos) << mixed;
    EXPECT_NE(mixed.find("layout of x"), std::string::npos) << mixed;
    const std::string blocked = internal_error_of([&] {
      const Tensor x8 = on_gpu(values).with_layout(Layout::nChw8c);
      Tensor y8 = empty_gpu(shape).with_layout(Layout::nChw8c);
      ops::batch_norm_forward_inference(x8, none, none, m.running_mean, m.running_var, y8, p);
    });
    EXPECT_NE(blocked.find("CPU layout"), std::string::npos) << blocked;
  }
  const std::string backward = internal_error_of([&] {
    Tensor dx_plain = empty_gpu(shape);
    ops::batch_norm_backward(x, x, none, m.save_mean, m.save_var, dx_plain, none, none, p);
  });
  EXPECT_NE(backward.find("dx"), std::string::npos) << backward;
}

// ---- convolution bias (ops/cuda/conv_bias.h) ----

// y += b and db = sum of dy over N, H, W, on nhwc and plain data; channels_last says which.
TEST(CudaConvBiasNhwc, AddAndGradientEqualPlainAndTheHostSum) {
  RUCHE_REQUIRE_CUDA();
  std::uint32_t seed = 1300;
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const Shape& shape : kShapes) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape.str());
      const std::int64_t n = shape[0], c = shape[1], plane = shape[2] * shape[3];
      const Inputs in = inputs_for(shape, dtype, seed += 10);
      const Tensor b_values =
          testing::cast_to(testing::cast_to(random_tensor({c}, seed + 5), dtype), DType::f32);
      const Tensor b = on_gpu(testing::cast_to(b_values, dtype));
      Tensor y_plain = gpu_as(in.x, dtype, Layout::plain);
      Tensor y_nhwc = gpu_as(in.x, dtype, Layout::nhwc);
      // nullptr: the default stream, which the ops run on (kernel_util.h's current_stream()).
      ops::gpu::add_channel_bias(dtype, y_plain.raw_data(), b.raw_data(), n, c, plane, false,
                                 nullptr);
      ops::gpu::add_channel_bias(dtype, y_nhwc.raw_data(), b.raw_data(), n, c, plane, true,
                                 nullptr);
      expect_same_values(y_nhwc, y_plain, "y + b");
      if (dtype == DType::f32) {  // one f32 add per element: exactly the host's
        Tensor want = in.x.clone();
        float* w = want.data<float>();
        const float* bias = b_values.data<float>();
        for (std::int64_t i = 0; i < want.numel(); ++i) w[i] += bias[i / plane % c];
        testing::expect_same_elements(plain_values(y_nhwc), want);
      }

      const Tensor dy_plain = gpu_as(in.dy, dtype, Layout::plain);
      const Tensor dy_nhwc = gpu_as(in.dy, dtype, Layout::nhwc);
      Tensor db_plain = Tensor::empty({c}, dtype, kGpu), db_nhwc = Tensor::empty({c}, dtype, kGpu);
      ops::gpu::channel_bias_gradient(dtype, dy_plain.raw_data(), db_plain.raw_data(), n, c, plane,
                                      false, nullptr);
      ops::gpu::channel_bias_gradient(dtype, dy_nhwc.raw_data(), db_nhwc.raw_data(), n, c, plane,
                                      true, nullptr);
      const Tensor db = testing::values_of(db_nhwc);
      testing::expect_same_elements(db, testing::values_of(db_plain));
      std::vector<double> want(static_cast<std::size_t>(c), 0.0);
      const float* g = in.dy.data<float>();
      for (std::int64_t i = 0; i < in.dy.numel(); ++i) want[i / plane % c] += g[i];
      const std::vector<float> got = db.to_vector<float>();
      for (std::int64_t ch = 0; ch < c; ++ch) {
        const double w = want[static_cast<std::size_t>(ch)];
        // One rounding of the double sum to dtype.
        const double tol = (dtype == DType::f32 ? 1e-6 : 8e-3) * std::max(1.0, std::abs(w));
        EXPECT_NEAR(got[static_cast<std::size_t>(ch)], w, tol) << "db of channel " << ch;
      }
    }
  }
}

}  // namespace
}  // namespace ruche
