// Synchronized batch norm's pieces (batch_norm_local_stats, _stats_to_moments, _backward_reduce,
// _backward_apply): on one rank they equal batch_norm_forward_training / batch_norm_backward;
// summed over shards of a batch (a pretend all-reduce) they equal batch norm on the whole batch;
// finite differences of the composed forward; errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/ops.h"
#include "tests/support/compare.h"
#include "tests/support/errors.h"
#include "tests/support/gradcheck.h"

namespace ruche {
namespace {

using testing::error_of;
using testing::random_tensor;

struct Moments {
  Tensor running_mean, running_var, save_mean, save_var;
  explicit Moments(std::int64_t c)
      : running_mean(Tensor::empty({c})),
        running_var(Tensor::empty({c})),
        save_mean(Tensor::empty({c})),
        save_var(Tensor::empty({c})) {
    running_mean.fill(0.25f);
    running_var.fill(1.5f);
  }
};

// Element-wise a += b (what the all-reduce does).
void add_into(Tensor& a, const Tensor& b) {
  const auto vb = b.to_vector<float>();
  float* pa = a.data<float>();
  for (std::size_t i = 0; i < vb.size(); ++i) pa[i] += vb[i];
}

// The pieces on one rank against the fused ops.
void check_one_rank(const Shape& shape, bool affine, std::uint32_t seed) {
  SCOPED_TRACE("sync batch norm " + shape.str() + (affine ? " affine" : ""));
  const std::int64_t c = shape[1];
  ops::BatchNormParams p;
  const Tensor x = random_tensor(shape, seed, -1.0f, 3.0f);  // mean away from 0
  const Tensor gamma = affine ? random_tensor({c}, seed + 1, 0.5f, 1.5f) : Tensor();
  const Tensor beta = affine ? random_tensor({c}, seed + 2) : Tensor();
  const Tensor dy = random_tensor(shape, seed + 3);

  Moments want(c), got(c);
  Tensor y_want = Tensor::empty(shape), y_got = Tensor::empty(shape);
  ops::batch_norm_forward_training(x, gamma, beta, y_want, want.running_mean, want.running_var,
                                   want.save_mean, want.save_var, p);
  Tensor stats = Tensor::empty({2 * c + 1});
  ops::batch_norm_local_stats(x, stats);
  // NOLINTNEXTLINE(bugprone-integer-division): numel is a multiple of c
  EXPECT_EQ(stats.to_vector<float>().back(), static_cast<float>(x.numel() / c));
  ops::batch_norm_stats_to_moments(stats, got.running_mean, got.running_var, got.save_mean,
                                   got.save_var, p);
  ops::batch_norm_forward_inference(x, gamma, beta, got.save_mean, got.save_var, y_got, p);
  EXPECT_TENSORS_CLOSE(y_got, y_want, 1e-6);
  EXPECT_TENSORS_CLOSE(got.save_mean, want.save_mean, 1e-6);
  EXPECT_TENSORS_CLOSE(got.save_var, want.save_var, 1e-6);
  EXPECT_TENSORS_CLOSE(got.running_mean, want.running_mean, 1e-6);
  EXPECT_TENSORS_CLOSE(got.running_var, want.running_var, 1e-6);

  Tensor dx_want = Tensor::empty(shape), dx_got = Tensor::empty(shape);
  Tensor dgamma_want = affine ? Tensor::empty({c}) : Tensor();
  Tensor dbeta_want = affine ? Tensor::empty({c}) : Tensor();
  Tensor dgamma_got = affine ? Tensor::empty({c}) : Tensor();
  Tensor dbeta_got = affine ? Tensor::empty({c}) : Tensor();
  ops::batch_norm_backward(dy, x, gamma, want.save_mean, want.save_var, dx_want, dgamma_want,
                           dbeta_want, p);
  Tensor sums = Tensor::empty({2 * c + 1});
  ops::batch_norm_backward_reduce(dy, x, got.save_mean, got.save_var, sums, dgamma_got, dbeta_got,
                                  p);
  ops::batch_norm_backward_apply(dy, x, gamma, got.save_mean, got.save_var, sums, dx_got, p);
  EXPECT_TENSORS_CLOSE(dx_got, dx_want, 1e-6);
  if (affine) {
    EXPECT_TENSORS_CLOSE(dgamma_got, dgamma_want, 1e-6);
    EXPECT_TENSORS_CLOSE(dbeta_got, dbeta_want, 1e-6);
  }
}

TEST(SyncBatchNorm, OneRankEqualsBatchNorm) {
  check_one_rank({8, 3}, true, 10);
  check_one_rank({1, 2, 3, 3}, true, 20);  // batch 1: statistics over H, W only
  check_one_rank({4, 5, 6, 7}, true, 30);
  check_one_rank({3, 4, 5, 5}, false, 40);
  check_one_rank({16, 32, 9, 9}, true, 50);  // large enough for the threaded loops
}

// Shards of one batch along N, unequal in size, their buffers summed: batch norm on the whole.
void check_shards(const Shape& shape, const std::vector<std::int64_t>& sizes, std::uint32_t seed) {
  SCOPED_TRACE("shards of " + shape.str());
  const std::int64_t c = shape[1];
  ops::BatchNormParams p;
  const Tensor x = random_tensor(shape, seed, -2.0f, 1.0f);
  const Tensor gamma = random_tensor({c}, seed + 1, 0.5f, 1.5f);
  const Tensor beta = random_tensor({c}, seed + 2);
  const Tensor dy = random_tensor(shape, seed + 3);

  Moments want(c);
  Tensor y_want = Tensor::empty(shape), dx_want = Tensor::empty(shape);
  Tensor dgamma_want = Tensor::empty({c}), dbeta_want = Tensor::empty({c});
  ops::batch_norm_forward_training(x, gamma, beta, y_want, want.running_mean, want.running_var,
                                   want.save_mean, want.save_var, p);
  ops::batch_norm_backward(dy, x, gamma, want.save_mean, want.save_var, dx_want, dgamma_want,
                           dbeta_want, p);

  // Forward: every shard's stats, summed; each shard then normalises its own rows.
  std::vector<Tensor> xs, dys;
  std::int64_t start = 0;
  for (std::int64_t n : sizes) {
    xs.push_back(x.narrow(0, start, n));
    dys.push_back(dy.narrow(0, start, n));
    start += n;
  }
  ASSERT_EQ(start, shape[0]);
  Tensor stats = Tensor::zeros({2 * c + 1}), local = Tensor::empty({2 * c + 1});
  for (const Tensor& xi : xs) {
    ops::batch_norm_local_stats(xi, local);
    add_into(stats, local);
  }
  Tensor y_got = Tensor::empty(shape), dx_got = Tensor::empty(shape);
  Tensor dgamma_got = Tensor::zeros({c}), dbeta_got = Tensor::zeros({c});
  std::vector<Moments> moments;
  for (std::size_t r = 0; r < xs.size(); ++r) {  // the same summed stats on every shard
    moments.emplace_back(c);
    Moments& m = moments.back();
    ops::batch_norm_stats_to_moments(stats, m.running_mean, m.running_var, m.save_mean, m.save_var,
                                     p);
  }
  start = 0;
  for (std::size_t r = 0; r < xs.size(); ++r) {
    Tensor yr = y_got.narrow(0, start, xs[r].size(0));
    ops::batch_norm_forward_inference(xs[r], gamma, beta, moments[r].save_mean, moments[r].save_var,
                                      yr, p);
    start += xs[r].size(0);
    EXPECT_TENSORS_CLOSE(moments[r].running_mean, want.running_mean, 1e-6);
    EXPECT_TENSORS_CLOSE(moments[r].running_var, want.running_var, 1e-6);
  }
  EXPECT_TENSORS_CLOSE(y_got, y_want, 1e-6);

  // Backward: every shard's sums, summed; local dgamma, dbeta add up to the whole batch's.
  Tensor sums = Tensor::zeros({2 * c + 1});
  for (std::size_t r = 0; r < xs.size(); ++r) {
    Tensor dg = Tensor::empty({c}), db = Tensor::empty({c});
    ops::batch_norm_backward_reduce(dys[r], xs[r], moments[r].save_mean, moments[r].save_var, local,
                                    dg, db, p);
    add_into(sums, local);
    add_into(dgamma_got, dg);
    add_into(dbeta_got, db);
  }
  start = 0;
  for (std::size_t r = 0; r < xs.size(); ++r) {
    Tensor dxr = dx_got.narrow(0, start, xs[r].size(0));
    ops::batch_norm_backward_apply(dys[r], xs[r], gamma, moments[r].save_mean, moments[r].save_var,
                                   sums, dxr, p);
    start += xs[r].size(0);
  }
  EXPECT_TENSORS_CLOSE(dx_got, dx_want, 1e-6);
  EXPECT_TENSORS_CLOSE(dgamma_got, dgamma_want, 1e-6);
  EXPECT_TENSORS_CLOSE(dbeta_got, dbeta_want, 1e-6);
}

TEST(SyncBatchNorm, SummedShardsEqualTheWholeBatch) {
  check_shards({6, 4, 5, 5}, {3, 2, 1}, 60);
  check_shards({10, 7}, {5, 5}, 70);
  check_shards({4, 3, 2, 3}, {1, 1, 1, 1}, 80);  // one sample per shard
}

// The composed one-rank forward (local stats -> moments -> normalise) against its backward.
TEST(SyncBatchNorm, GradientsMatchFiniteDifferences) {
  for (const bool affine : {true, false}) {
    const Shape shape{3, 4, 3, 5};
    const std::int64_t c = shape[1];
    ops::BatchNormParams p;
    std::vector<Tensor> inputs{random_tensor(shape, 90, -2.0f, 2.0f),
                               affine ? random_tensor({c}, 91, 0.5f, 1.5f) : Tensor(),
                               affine ? random_tensor({c}, 92) : Tensor()};
    Moments m(c);
    Tensor stats = Tensor::empty({2 * c + 1}), sums = Tensor::empty({2 * c + 1});
    const auto forward = [&](std::vector<Tensor>& in) {
      Tensor y = Tensor::empty(shape);
      ops::batch_norm_local_stats(in[0], stats);
      ops::batch_norm_stats_to_moments(stats, m.running_mean, m.running_var, m.save_mean,
                                       m.save_var, p);
      ops::batch_norm_forward_inference(in[0], in[1], in[2], m.save_mean, m.save_var, y, p);
      return y;
    };
    const auto backward = [&](std::vector<Tensor>& in, const Tensor& dy) {
      forward(in);
      Tensor dx = Tensor::empty(shape);
      Tensor dgamma = affine ? Tensor::empty({c}) : Tensor();
      Tensor dbeta = affine ? Tensor::empty({c}) : Tensor();
      ops::batch_norm_backward_reduce(dy, in[0], m.save_mean, m.save_var, sums, dgamma, dbeta, p);
      ops::batch_norm_backward_apply(dy, in[0], in[1], m.save_mean, m.save_var, sums, dx, p);
      return std::vector<Tensor>{dx, dgamma, dbeta};
    };
    std::vector<int> checked{0};
    if (affine) checked.insert(checked.end(), {1, 2});
    testing::expect_gradients_match(inputs, forward, backward, checked);
  }
}

TEST(SyncBatchNorm, ErrorsNameTheOp) {
  ops::BatchNormParams p;
  const Tensor x = Tensor::zeros({2, 3, 4, 4});
  Tensor bad = Tensor::zeros({6});
  EXPECT_EQ(error_of([&] { ops::batch_norm_local_stats(x, bad); }),
            "batch_norm_local_stats: stats must be [7] (two values per channel and a count), got "
            "[6]");
  Tensor c3 = Tensor::zeros({3}), c4 = Tensor::zeros({4});
  Tensor one_value = Tensor::zeros({7});
  one_value.data<float>()[6] = 1.0f;
  EXPECT_EQ(error_of([&] { ops::batch_norm_stats_to_moments(one_value, c3, c3, c3, c3, p); }),
            "batch_norm_stats_to_moments: expected more than 1 value per channel when training, "
            "got 1");
  Tensor stats = Tensor::zeros({7});
  stats.data<float>()[6] = 32.0f;
  EXPECT_EQ(
      error_of([&] { ops::batch_norm_stats_to_moments(stats, c3, c4, c3, c3, p); }),
      "batch_norm_stats_to_moments: running_var must be [3] (one value per channel), got [4]");
  Tensor dx = Tensor::zeros(x.shape());
  EXPECT_EQ(error_of([&] { ops::batch_norm_backward_apply(x, x, c3, c3, c3, bad, dx, p); }),
            "batch_norm_backward_apply: sums must be [7] (two values per channel and a count), got "
            "[6]");
  Tensor no_count = Tensor::zeros({7});
  EXPECT_EQ(error_of([&] { ops::batch_norm_backward_apply(x, x, c3, c3, c3, no_count, dx, p); }),
            "batch_norm_backward_apply: the count in sums must be positive, got 0");
  Tensor y_bad = Tensor::zeros({2, 3, 4, 5});
  Tensor dg, db;
  EXPECT_EQ(error_of([&] { ops::batch_norm_backward_reduce(y_bad, x, c3, c3, stats, dg, db, p); }),
            "batch_norm_backward_reduce: dy has shape [2, 3, 4, 5] but x has [2, 3, 4, 4]");
}

}  // namespace
}  // namespace ruche
