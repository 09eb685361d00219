// The fast CPU path against the reference path (RUCHE_CPU_REFERENCE=1: today's plain NCHW code,
// no fusion): oneDNN's pooling against the loops, batch norm and convolution with a fused ReLU
// against the op followed by a separate ReLU. Odd sizes and batch 1; ctest runs it on 2 threads
// and on 1 (ops_reference_path_1thread).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "ops/cpu/cpu_ops.h"
#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/pool_cases.h"

namespace ruche {
namespace {

using testing::pool_params;
using testing::random_tensor;

constexpr double kTolerance = 1e-5;

// Runs `op` on the reference path, then on the fast path; each writes into its own outputs.
void on_both_paths(const std::function<void(bool reference)>& op) {
  ops::set_cpu_reference_path(true);
  op(true);
  ops::set_cpu_reference_path(false);
  op(false);
}

// The ReLU took part: none negative, and a quarter or more zero (the inputs are centred).
void expect_relu_applied(const Tensor& y) {
  std::size_t zeros = 0, negatives = 0;
  const auto values = y.to_vector<float>();
  for (float v : values) {
    zeros += v == 0.0f;
    negatives += v < 0.0f;
  }
  EXPECT_EQ(negatives, 0u);
  EXPECT_GT(zeros, values.size() / 4);
}

const testing::PoolCase kPoolCases[] = {
    {"k2s2", {4, 16, 28, 28}, pool_params(2, 2, 2, 2, 0, 0)},
    {"k2s2_odd_batch1", {1, 3, 7, 9}, pool_params(2, 2, 2, 2, 0, 0)},
    {"k3s2p1", {2, 5, 13, 11}, pool_params(3, 3, 2, 2, 1, 1)},
    {"k3s2p1_ceil", {2, 5, 14, 12}, pool_params(3, 3, 2, 2, 1, 1, true)},
    {"k2s2_ceil_odd", {3, 4, 7, 9}, pool_params(2, 2, 2, 2, 0, 0, true)},
    {"k3x2_s2x1_p1x0", {2, 4, 9, 8}, pool_params(3, 2, 2, 1, 1, 0)},
    {"k2s2p1_ceil", {2, 3, 6, 6}, pool_params(2, 2, 2, 2, 1, 1, true)},
    {"k3s3_ceil_p1", {1, 2, 10, 11}, pool_params(3, 3, 3, 3, 1, 1, true)},
};

class PoolingPaths : public ::testing::TestWithParam<testing::PoolCase> {};

TEST_P(PoolingPaths, MaxPoolMatchesReference) {
  const testing::PoolCase& c = GetParam();
  const Tensor x = random_tensor(c.x, 1);
  const Shape ys = ops::pool2d_output_shape(c.x, c.p);
  const Tensor dy = random_tensor(ys, 2);
  Tensor y[2], indices[2], dx[2];
  on_both_paths([&](bool reference) {
    const int i = reference ? 0 : 1;
    y[i] = Tensor::empty(ys);
    indices[i] = Tensor::empty(ys, DType::i32);
    dx[i] = Tensor::empty(c.x);
    ops::max_pool2d_forward(x, y[i], indices[i], c.p);
    ops::max_pool2d_backward(dy, indices[i], dx[i], c.p);
  });
  EXPECT_TENSORS_CLOSE(y[1], y[0], kTolerance);
  testing::expect_same_elements<std::int32_t>(indices[1], indices[0]);
  EXPECT_TENSORS_CLOSE(dx[1], dx[0], kTolerance);
}

TEST_P(PoolingPaths, AvgPoolMatchesReference) {
  for (const bool include_pad : {true, false}) {
    testing::PoolCase c = GetParam();
    c.p.count_include_pad = include_pad;
    SCOPED_TRACE(include_pad ? "count_include_pad" : "exclude padding");
    const Tensor x = random_tensor(c.x, 3);
    const Shape ys = ops::pool2d_output_shape(c.x, c.p);
    const Tensor dy = random_tensor(ys, 4);
    Tensor y[2], dx[2];
    on_both_paths([&](bool reference) {
      const int i = reference ? 0 : 1;
      y[i] = Tensor::empty(ys);
      dx[i] = Tensor::empty(c.x);
      ops::avg_pool2d_forward(x, y[i], c.p);
      ops::avg_pool2d_backward(dy, dx[i], c.p);
    });
    EXPECT_TENSORS_CLOSE(y[1], y[0], kTolerance);
    EXPECT_TENSORS_CLOSE(dx[1], dx[0], kTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Pooling, PoolingPaths, ::testing::ValuesIn(kPoolCases),
                         [](const auto& info) { return std::string(info.param.name); });

struct BatchNormCase {
  const char* name;
  Shape x;
  bool affine;
};

class BatchNormPaths : public ::testing::TestWithParam<BatchNormCase> {};

// Training forward (outputs, batch and running statistics), inference forward, each with a fused
// ReLU, and backward, on both paths.
TEST_P(BatchNormPaths, FusedReluMatchesReference) {
  const BatchNormCase& c = GetParam();
  const std::int64_t channels = c.x[1];
  const Tensor x = random_tensor(c.x, 5, -2.0f, 3.0f);
  const Tensor gamma = c.affine ? random_tensor({channels}, 6, 0.5f, 1.5f) : Tensor();
  const Tensor beta = c.affine ? random_tensor({channels}, 7) : Tensor();
  const Tensor dy = random_tensor(c.x, 8);
  ops::BatchNormParams p;
  p.fused_relu = true;
  struct Out {
    Tensor y, y_inference, running_mean, running_var, save_mean, save_var, dx, dgamma, dbeta;
  } out[2];
  on_both_paths([&](bool reference) {
    Out& o = out[reference ? 0 : 1];
    o.y = Tensor::empty(c.x);
    o.y_inference = Tensor::empty(c.x);
    o.running_mean = random_tensor({channels}, 9);
    o.running_var = random_tensor({channels}, 10, 0.5f, 2.0f);
    o.save_mean = Tensor::empty({channels});
    o.save_var = Tensor::empty({channels});
    o.dx = Tensor::empty(c.x);
    o.dgamma = c.affine ? Tensor::empty({channels}) : Tensor();
    o.dbeta = c.affine ? Tensor::empty({channels}) : Tensor();
    ops::batch_norm_forward_training(x, gamma, beta, o.y, o.running_mean, o.running_var,
                                     o.save_mean, o.save_var, p);
    ops::batch_norm_forward_inference(x, gamma, beta, o.running_mean, o.running_var, o.y_inference,
                                      p);
    ops::batch_norm_backward(dy, x, gamma, o.save_mean, o.save_var, o.dx, o.dgamma, o.dbeta, p);
  });
  for (const auto member : {&Out::y, &Out::y_inference, &Out::running_mean, &Out::running_var,
                            &Out::save_mean, &Out::save_var, &Out::dx}) {
    EXPECT_TENSORS_CLOSE(out[1].*member, out[0].*member, kTolerance);
  }
  if (c.affine) {
    EXPECT_TENSORS_CLOSE(out[1].dgamma, out[0].dgamma, kTolerance);
    EXPECT_TENSORS_CLOSE(out[1].dbeta, out[0].dbeta, kTolerance);
  }
  expect_relu_applied(out[1].y);
}

INSTANTIATE_TEST_SUITE_P(BatchNorm, BatchNormPaths,
                         ::testing::Values(BatchNormCase{"fashion", {8, 32, 28, 28}, true},
                                           BatchNormCase{"odd", {3, 5, 9, 11}, true},
                                           BatchNormCase{"batch1", {1, 3, 5, 7}, true},
                                           BatchNormCase{"no_affine", {2, 6, 7, 7}, false},
                                           BatchNormCase{"nc", {16, 10}, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// Convolution (and transposed convolution) + bias + ReLU as one oneDNN primitive (a post-op)
// against the convolution then a ReLU.
TEST(ConvPaths, FusedReluMatchesReference) {
  const Shape xs{3, 5, 9, 11}, ws{8, 5, 3, 3};
  const Tensor x = random_tensor(xs, 11), w = random_tensor(ws, 12), b = random_tensor({8}, 13);
  ops::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  p.stride_w = 2;
  p.fused_relu = true;
  const Shape ys = ops::conv2d_output_shape(xs, ws, p);
  Tensor y[2];
  on_both_paths([&](bool reference) {
    Tensor& out = y[reference ? 0 : 1];
    out = Tensor::empty(ys);
    ops::conv2d_forward(x, w, b, out, p);
  });
  EXPECT_TENSORS_CLOSE(y[1], y[0], kTolerance);
  expect_relu_applied(y[1]);
}

TEST(DeconvPaths, FusedReluMatchesReference) {
  const Shape xs{2, 4, 6, 7}, ws{4, 6, 3, 3};
  const Tensor x = random_tensor(xs, 14), w = random_tensor(ws, 15), b = random_tensor({6}, 16);
  ops::Deconv2dParams p;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  p.fused_relu = true;
  const Shape ys = ops::deconv2d_output_shape(xs, ws, p);
  Tensor y[2];
  on_both_paths([&](bool reference) {
    Tensor& out = y[reference ? 0 : 1];
    out = Tensor::empty(ys);
    ops::deconv2d_forward(x, w, b, out, p);
  });
  EXPECT_TENSORS_CLOSE(y[1], y[0], kTolerance);
  expect_relu_applied(y[1]);
}

// ---- blocked layouts: each op on nChw8c / nChw16c tensors equals the op on plain ones ----
// The blocked calls go to the CPU ops themselves (ops/cpu), past the dispatch: which ops a net may
// hand blocked tensors is ops/op_table.h's RUCHE_OPS_TAKING_BLOCKED, and these tests keep the
// ops' blocked paths checked whether or not the list names them yet.

Tensor to_layout(const Tensor& plain, Layout layout) {
  Tensor t = Tensor::empty(plain.shape()).with_layout(layout);
  ops::reorder(plain, t);
  return t;
}

Tensor to_plain(const Tensor& t) {
  Tensor plain = Tensor::empty(t.shape());
  ops::reorder(t, plain);
  return plain;
}

class BlockedLayouts : public ::testing::TestWithParam<Layout> {};

TEST_P(BlockedLayouts, ConvolutionMatchesPlain) {
  const Layout layout = GetParam();
  ops::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  p.fused_relu = true;
  for (const std::int64_t in : {3, 16}) {  // the first convolution of a net reads plain images
    SCOPED_TRACE("input channels " + std::to_string(in));
    const Shape xs{2, in, 9, 7}, ws{32, in, 3, 3};
    const Shape ys = ops::conv2d_output_shape(xs, ws, p);
    const Tensor x = random_tensor(xs, 20), w = random_tensor(ws, 21), b = random_tensor({32}, 22);
    const Tensor dy = random_tensor(ys, 23);
    const Layout x_layout = layout_fits(layout, in) ? layout : Layout::plain;
    Tensor y = Tensor::empty(ys), dx = Tensor::empty(xs), dw = Tensor::empty(ws);
    Tensor db = Tensor::empty({32});
    ops::conv2d_forward(x, w, b, y, p);
    ops::conv2d_backward_data(dy, w, dx, p);
    ops::conv2d_backward_weights(x, dy, dw, db, p);
    const Tensor xb = to_layout(x, x_layout), dyb = to_layout(dy, layout);
    Tensor yb = Tensor::empty(ys).with_layout(layout);
    Tensor dxb = Tensor::empty(xs).with_layout(x_layout);
    Tensor dwb = Tensor::empty(ws), dbb = Tensor::empty({32});
    ops::cpu::conv2d_forward(xb, w, b, yb, p);
    ops::cpu::conv2d_backward_data(dyb, w, dxb, p);
    ops::cpu::conv2d_backward_weights(xb, dyb, dwb, dbb, p);
    EXPECT_TENSORS_CLOSE(to_plain(yb), y, kTolerance);
    EXPECT_TENSORS_CLOSE(to_plain(dxb), dx, kTolerance);
    EXPECT_TENSORS_CLOSE(dwb, dw, kTolerance);
    EXPECT_TENSORS_CLOSE(dbb, db, kTolerance);
  }
}

TEST_P(BlockedLayouts, BatchNormMatchesPlain) {
  const Layout layout = GetParam();
  const Shape xs{3, 32, 7, 5};
  const Tensor x = random_tensor(xs, 24, -2.0f, 3.0f), dy = random_tensor(xs, 25);
  const Tensor gamma = random_tensor({32}, 26, 0.5f, 1.5f), beta = random_tensor({32}, 27);
  ops::BatchNormParams p;
  p.fused_relu = true;
  struct Out {
    Tensor y, y_inference, running_mean, running_var, save_mean, save_var, dx, dgamma, dbeta;
  } out[2];
  for (const bool blocked : {false, true}) {
    Out& o = out[blocked ? 1 : 0];
    const Layout l = blocked ? layout : Layout::plain;
    const Tensor xl = to_layout(x, l), dyl = to_layout(dy, l);
    o.y = Tensor::empty(xs).with_layout(l);
    o.y_inference = Tensor::empty(xs).with_layout(l);
    o.dx = Tensor::empty(xs).with_layout(l);
    o.running_mean = Tensor::zeros({32});
    o.running_var = Tensor::empty({32});
    o.running_var.fill(1.0f);
    o.save_mean = Tensor::empty({32});
    o.save_var = Tensor::empty({32});
    o.dgamma = Tensor::empty({32});
    o.dbeta = Tensor::empty({32});
    ops::cpu::batch_norm_forward_training(xl, gamma, beta, o.y, o.running_mean, o.running_var,
                                          o.save_mean, o.save_var, p);
    ops::cpu::batch_norm_forward_inference(xl, gamma, beta, o.running_mean, o.running_var,
                                           o.y_inference, p);
    ops::cpu::batch_norm_backward(dyl, xl, gamma, o.save_mean, o.save_var, o.dx, o.dgamma, o.dbeta,
                                  p);
    o.y = to_plain(o.y);
    o.y_inference = to_plain(o.y_inference);
    o.dx = to_plain(o.dx);
  }
  for (const auto member : {&Out::y, &Out::y_inference, &Out::running_mean, &Out::running_var,
                            &Out::save_mean, &Out::save_var, &Out::dx, &Out::dgamma, &Out::dbeta}) {
    EXPECT_TENSORS_CLOSE(out[1].*member, out[0].*member, kTolerance);
  }
}

TEST_P(BlockedLayouts, PoolingMatchesPlain) {
  const Layout layout = GetParam();
  for (const testing::PoolCase& c : kPoolCases) {
    SCOPED_TRACE(c.name);
    const Shape xs{c.x[0], 16, c.x[2], c.x[3]};
    const Shape ys = ops::pool2d_output_shape(xs, c.p);
    const Tensor x = random_tensor(xs, 28), dy = random_tensor(ys, 29);
    Tensor y = Tensor::empty(ys), indices = Tensor::empty(ys, DType::i32), dx = Tensor::empty(xs);
    ops::max_pool2d_forward(x, y, indices, c.p);
    ops::max_pool2d_backward(dy, indices, dx, c.p);
    const Tensor xb = to_layout(x, layout), dyb = to_layout(dy, layout);
    Tensor yb = Tensor::empty(ys).with_layout(layout), dxb = Tensor::empty(xs).with_layout(layout);
    ops::cpu::max_pool2d_forward(xb, yb, indices, c.p);
    ops::cpu::max_pool2d_backward(dyb, indices, dxb, c.p);
    EXPECT_TENSORS_CLOSE(to_plain(yb), y, kTolerance);
    EXPECT_TENSORS_CLOSE(to_plain(dxb), dx, kTolerance);
    if (!ops::avg_pool2d_takes_blocked(xs, c.p)) continue;
    ops::avg_pool2d_forward(x, y, c.p);
    ops::avg_pool2d_backward(dy, dx, c.p);
    ops::cpu::avg_pool2d_forward(xb, yb, c.p);
    ops::cpu::avg_pool2d_backward(dyb, dxb, c.p);
    EXPECT_TENSORS_CLOSE(to_plain(yb), y, kTolerance);
    EXPECT_TENSORS_CLOSE(to_plain(dxb), dx, kTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, BlockedLayouts,
                         ::testing::Values(Layout::nChw8c, Layout::nChw16c, Layout::nhwc),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

}  // namespace
}  // namespace ruche
