// A training step performs no heap allocation in ruche's code (docs/ARCHITECTURE.md, The flat
// buffer: the static memory plan). Global operator new is replaced in this executable to count
// allocations while a flag is set.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>

#include "engine/data/loader.h"
#include "engine/data/open.h"
#include "engine/graph/net.h"
#include "engine/models/models.h"
#include "engine/optim/grad_norm.h"
#include "engine/optim/optimizer.h"
#include "engine/train/evaluate.h"
#include "engine/train/step_readout.h"
#include "engine/train/trainer.h"
#include "ops/cpu/dnnl_context.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_ruche_allocations{0};
std::atomic<long> g_onednn_allocations{0};

void count_allocation() {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  if (ruche::ops::cpu::inside_onednn()) {
    g_onednn_allocations.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_ruche_allocations.fetch_add(1, std::memory_order_relaxed);
  }
}
}  // namespace

void* operator new(std::size_t n) {
  count_allocation();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
// The nothrow forms too (std::stable_sort's temporary buffer): the deletes below free them.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  count_allocation();
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept {
  return operator new(n, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace ruche {
namespace {

TEST(TrainingStep, AllocatesNothingAfterWarmUp) {
  DataSpec spec("synthetic");
  spec.synthetic.sample_shape = {1, 28, 28};
  spec.synthetic.num_classes = 10;
  spec.synthetic.size = 512;
  const DataSplits splits = open_splits(spec, 0.0, 1);
  LoaderOptions lo;
  lo.batch_size = 16;
  BatchLoader loader(splits.train, DistributedSampler(splits.train->size(), 0, 1), lo);

  NetOptions no;
  no.batch_size = 16;
  no.sample_shape = splits.train->sample_shape();
  no.num_classes = 10;
  auto net = Net::build(builtin_model("fashion_cnn", {no.sample_shape, 0}), no);
  net->init_params(1);
  const proto::SolverParameter solver = default_solver();
  auto optimizer = make_optimizer(solver, net->param_table(), net->num_trainable());

  // The trainer's step: what the host reads of it goes through the step's read-back.
  StepReadout readout(*net, Task::classification, false, 1, &net_probabilities(*net), std::nullopt);
  StepContext ctx;
  ctx.defer_checks = true;
  auto step = [&](std::uint32_t i) {
    ASSERT_EQ(loader.next(net->input(), net->labels()), 16);
    ctx.step = i;
    net->forward(ctx);
    net->backward(ctx, false);
    readout.record_micro_batch(0, 16);
    ops::sum_squares_finite(net->grads(), net->num_trainable(), readout.grad_sums());
    ops::SumSquaresFinite sums;
    const StepVotes votes = readout.fetch(sums);
    ASSERT_TRUE(std::isfinite(votes[StepVotes::loss_sum]));
    ASSERT_EQ(votes[StepVotes::samples], 16);
    const GradStats stats{sums.sum_squares, std::sqrt(sums.sum_squares), sums.finite};
    clip_grad_norm(net->grads(), net->num_trainable(), stats, 1.0f);
    optimizer->step(net->params(), net->grads(), 0.01f);
  };
  loader.start_epoch(0);
  step(0);  // warm-up: primitive caches, workspaces, the loader's first batches
  step(1);
  g_counting = true;
  for (std::uint32_t i = 2; i < 6; ++i) step(i);
  g_counting = false;
  EXPECT_EQ(g_ruche_allocations.load(), 0) << "heap allocations in ruche's code during 4 steps";
  // oneDNN 2.6's dnnl_primitive_execute builds its argument map on the heap: outside our reach,
  // reported so a oneDNN upgrade that removes it shows up here.
  std::printf("oneDNN allocated %ld times inside primitive executions over 4 steps\n",
              g_onednn_allocations.load());
}

}  // namespace
}  // namespace ruche
