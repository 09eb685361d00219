// --sync-bn under mpirun: N ranks, each on its slice of a fixed global batch with ctx.sync_bn set,
// their parameter gradients averaged (as the reducer does), against one net on the whole global
// batch without sync-bn, computed on every rank: same outputs, loss, running statistics and
// gradients. Without sync-bn the gradients and running statistics differ, so the check can fail.
// The net has a batch norm on the data (no gradient flows to it: backward's all-reduce is
// skipped), one on a convolution's output ([N, C, H, W]) and one on a linear layer's ([N, C]).
// The layers before a batch norm have no bias, as in ResNets: its true gradient would be 0, and
// the rounding noise in its place has no norm to be relative to.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/mpi/mpi_communicator.h"
#include "engine/graph/net.h"
#include "engine/rng/fill.h"
#include "tests/layers/layer_harness.h"
#include "tests/support/compare.h"
#include "tests/mpi/mpi_env.h"

namespace ruche {
namespace {

using testing::bind_layer;
using testing::norm_relative_error;
using testing::random_tensor;
using testing::world;

constexpr const char* kNet = R"(
name: "sync_bn"
layer { name: "input" type: "Input" top: "data" top: "label" }
layer { name: "bn0" type: "BatchNorm" bottom: "data" top: "d0" }
layer { name: "conv1" type: "Convolution" bottom: "d0" top: "c1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "c1" top: "b1" }
layer { name: "relu1" type: "ReLU" bottom: "b1" top: "b1" }
layer { name: "pool1" type: "Pooling" bottom: "b1" top: "p1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "p1" top: "f1"
        inner_product_param { num_output: 6 bias_term: false } }
layer { name: "bn2" type: "BatchNorm" bottom: "f1" top: "b2" }
layer { name: "relu2" type: "ReLU" bottom: "b2" top: "b2" }
layer { name: "fc2" type: "InnerProduct" bottom: "b2" top: "logits" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
)";

constexpr int kPerRank = 8;  // samples per rank
constexpr int kClasses = 5;
constexpr int kSteps = 2;  // the running statistics move twice
constexpr double kTolerance = 1e-5;
// One parameter's gradient alone: a tensor of a few entries (bn0.bias: 4), each a sum over
// hundreds of products, whose rounding depends on the CPU's vector width in oneDNN (1.3e-5 seen
// on an Intel Xeon with AVX-512, under 1e-5 on an AMD EPYC).
constexpr double kParamTolerance = 5e-5;

// The same weights on every rank and for every batch size; gamma and beta drawn away from 1, 0.
std::unique_ptr<Net> make_net(int batch) {
  NetSource source;
  NetOptions options;
  options.batch_size = batch;
  options.sample_shape = {2, 6, 6};
  options.num_classes = kClasses;
  auto net = Net::build(parse_net(kNet, "sync_bn.prototxt", &source), options);
  net->init_params(11);
  std::uint32_t stream = 0;
  for (const char* bn : {"bn0", "bn1", "bn2"}) {
    Tensor gamma = net->state_tensor(std::string(bn).append(".weight"));
    Tensor beta = net->state_tensor(std::string(bn).append(".bias"));
    fill_uniform(gamma, 0.5f, 1.5f, RngStream{5, RngPurpose::test, 0, 0, stream++});
    fill_uniform(beta, -0.5f, 0.5f, RngStream{5, RngPurpose::test, 0, 0, stream++});
  }
  return net;
}

// Step `step`'s global batch, the same on every rank: data with a mean away from 0, labels.
struct Batch {
  Tensor x, labels;
};
Batch global_batch(int step, int size) {
  Batch b{Tensor::empty({size, 2, 6, 6}), Tensor::empty({size}, DType::i32)};
  fill_uniform(b.x, -1.0f, 2.0f,
               RngStream{9, RngPurpose::test, 0, static_cast<std::uint32_t>(step), 0});
  std::int32_t* labels = b.labels.data<std::int32_t>();
  for (int i = 0; i < size; ++i) labels[i] = (i * 3 + step) % kClasses;
  return b;
}

void run_step(Net& net, const Tensor& x, const Tensor& labels, Communicator* sync_bn, int step) {
  net.input().copy_from(x);
  net.labels().copy_from(labels);
  StepContext ctx;
  ctx.phase = Phase::train;
  ctx.step = static_cast<std::uint32_t>(step);
  ctx.sync_bn = sync_bn;
  net.forward(ctx);
  net.backward(ctx, false);
}

// What N ranks end with after a step, against the one net on the global batch.
struct Errors {
  double output = 0, loss = 0, buffers = 0, grads = 0;
  double worst_param = 0;  // the largest error of one parameter's gradient
};

Errors step_errors(Communicator& comm, Net& part, Net& whole, const Batch& batch,
                   Communicator* sync_bn, int step) {
  const std::int64_t begin = static_cast<std::int64_t>(comm.rank()) * kPerRank;
  run_step(whole, batch.x, batch.labels, nullptr, step);
  run_step(part, batch.x.narrow(0, begin, kPerRank), batch.labels.narrow(0, begin, kPerRank),
           sync_bn, step);
  // The reducer's average over the ranks, and the mean of the per-rank mean losses.
  Tensor grads = part.grads().clone();
  comm.all_reduce(BufferView::of(grads), ReduceOp::avg).wait();
  Tensor loss = part.loss().clone();
  comm.all_reduce(BufferView::of(loss), ReduceOp::avg).wait();
  Errors e;
  e.output = norm_relative_error(part.output(), whole.output().narrow(0, begin, kPerRank));
  e.loss = norm_relative_error(loss, whole.loss());
  e.buffers = norm_relative_error(part.buffers(), whole.buffers());
  e.grads = norm_relative_error(grads, whole.grads());
  // Per parameter too, so that a small tensor's error is not hidden by a large one's.
  for (const ParamEntry& p : whole.param_table()) {
    if (p.frozen || !sync_bn) continue;
    const double err = norm_relative_error(grads.narrow(0, p.offset, p.count),
                                           whole.grads().narrow(0, p.offset, p.count));
    EXPECT_LE(err, kParamTolerance) << "step " << step << ": gradient of " << p.name;
    e.worst_param = std::max(e.worst_param, err);
  }
  return e;
}

void print_errors(const char* what, int rank, int step, const Errors& e) {
  if (rank != 0) return;
  std::printf(
      "%s step %d: norm-relative error output %.2e loss %.2e buffers %.2e grads %.2e (worst "
      "parameter %.2e)\n",
      what, step, e.output, e.loss, e.buffers, e.grads, e.worst_param);
}

TEST(SyncBn, RanksMatchOneProcessOnTheGlobalBatch) {
  MpiCommunicator comm(world());
  const int global = kPerRank * comm.size();
  auto whole = make_net(global);
  auto part = make_net(kPerRank);
  for (int step = 0; step < kSteps; ++step) {
    SCOPED_TRACE("rank " + std::to_string(comm.rank()) + " step " + std::to_string(step));
    const Errors e = step_errors(comm, *part, *whole, global_batch(step, global), &comm, step);
    print_errors("sync-bn", comm.rank(), step, e);
    EXPECT_LE(e.output, kTolerance);
    EXPECT_LE(e.loss, kTolerance);
    EXPECT_LE(e.buffers, kTolerance);
    EXPECT_LE(e.grads, kTolerance);
    // Each rank computes its running statistics from the all-reduced sums: they must be the same
    // bits everywhere (the trainer's in-sync check hashes them, and no broadcast mends them).
    const Tensor& mine = part->buffers();
    Tensor all = Tensor::empty({comm.size() * mine.numel()});
    comm.all_gather(BufferView::of(mine), BufferView::of(all)).wait();
    for (int r = 0; r < comm.size(); ++r) {
      const Tensor theirs = all.narrow(0, r * mine.numel(), mine.numel());
      EXPECT_EQ(std::memcmp(theirs.raw_data(), mine.raw_data(), mine.nbytes()), 0)
          << "rank " << r << "'s running statistics differ in their bits";
    }
  }
}

TEST(SyncBn, WithoutSyncBnTheResultsDiffer) {
  MpiCommunicator comm(world());
  if (comm.size() == 1) GTEST_SKIP() << "one rank: its batch is the global batch";
  const int global = kPerRank * comm.size();
  auto whole = make_net(global);
  auto part = make_net(kPerRank);
  for (int step = 0; step < kSteps; ++step) {
    SCOPED_TRACE("rank " + std::to_string(comm.rank()) + " step " + std::to_string(step));
    const Errors e = step_errors(comm, *part, *whole, global_batch(step, global), nullptr, step);
    print_errors("local bn", comm.rank(), step, e);
    EXPECT_GT(e.output, 100 * kTolerance);
    EXPECT_GT(e.buffers, 100 * kTolerance);
    EXPECT_GT(e.grads, 100 * kTolerance);
  }
}

// The BatchNorm layer alone, each rank on its rows of one input and one output gradient, against
// the layer on all rows without sync-bn: its output rows, running statistics and dx rows match,
// and the ranks' dgamma, dbeta sum to the whole batch's (the same dy here, not a mean loss's).
void check_layer(Communicator& comm, const std::string& text, const Shape& rank_shape) {
  SCOPED_TRACE(text + " " + rank_shape.str());
  Shape whole_shape = rank_shape;
  whole_shape[0] *= comm.size();
  const std::int64_t rows = rank_shape[0], begin = comm.rank() * rows;
  const Tensor x = random_tensor(whole_shape, 1, -1.0f, 2.0f);
  const Tensor dy = random_tensor(whole_shape, 2);
  auto whole = bind_layer(text, {x});
  auto part = bind_layer(text, {x.narrow(0, begin, rows).clone()});
  part.ctx.sync_bn = &comm;
  whole.forward();
  part.forward();
  whole.io.top_diff[0].copy_from(dy);
  part.io.top_diff[0].copy_from(dy.narrow(0, begin, rows));
  whole.backward();
  part.backward();
  EXPECT_TENSORS_CLOSE(part.io.top[0], whole.io.top[0].narrow(0, begin, rows), kTolerance);
  EXPECT_TENSORS_CLOSE(part.io.bottom_diff[0], whole.io.bottom_diff[0].narrow(0, begin, rows),
                       kTolerance);
  for (std::size_t i = 0; i < part.decls.size(); ++i) {
    SCOPED_TRACE(part.decls[i].suffix);
    if (part.decls[i].role == ParamRole::buffer) {
      EXPECT_TENSORS_CLOSE(part.io.params[i], whole.io.params[i], kTolerance);
    } else {
      Tensor sum = part.io.param_grads[i].clone();
      comm.all_reduce(BufferView::of(sum), ReduceOp::sum).wait();
      EXPECT_TENSORS_CLOSE(sum, whole.io.param_grads[i], kTolerance);
    }
  }
}

TEST(SyncBn, LayerOnRowsMatchesTheWholeBatch) {
  MpiCommunicator comm(world());
  check_layer(comm, "name: 'bn' type: 'BatchNorm'", {3, 4, 5, 5});
  check_layer(comm, "name: 'bn' type: 'BatchNorm'", {6, 5});
  check_layer(comm, "name: 'bn' type: 'BatchNorm' batch_norm_param { affine: false }",
              {2, 3, 4, 4});
  check_layer(comm, "name: 'bn' type: 'BatchNorm' batch_norm_param { momentum: 0.3 eps: 0.01 }",
              {4, 2, 3, 3});
}

}  // namespace
}  // namespace ruche
