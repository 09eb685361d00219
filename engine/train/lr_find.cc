#include "engine/train/lr_find.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "engine/metrics/json_writer.h"
#include "engine/models/models.h"
#include "engine/optim/grad_norm.h"
#include "engine/optim/optimizer.h"
#include "engine/tensor/allocator.h"
#include "engine/train/train_data.h"
#include "engine/train/weights.h"
#include "ops/ops.h"

namespace ruche {

LrFindResult lr_find(const TrainRun& run, const LrFindOptions& options, bool verbose) {
  RUCHE_REQUIRE(options.start_lr > 0 && options.end_lr > options.start_lr)
      << "lr-find: need 0 < --start-lr < --end-lr, got " << options.start_lr << " and "
      << options.end_lr;
  RUCHE_REQUIRE(options.steps >= 2) << "lr-find: --steps must be at least 2, got " << options.steps;
  RUCHE_REQUIRE(options.smoothing >= 0 && options.smoothing < 1)
      << "lr-find: the smoothing must be in [0, 1), got " << options.smoothing;
  const proto::SolverParameter& solver = run.solver;
  ops::set_num_threads(run.threads);
  use_device(run.device);
  ops::set_gpu_math(run.gpu_math);

  // The training split only: validation draws nothing here, the test split is never opened.
  proto::SolverParameter data_solver = solver;
  data_solver.set_val_fraction(0);
  TrainDataOptions data_opts;
  data_opts.device = run.device;
  data_opts.workers = run.data_workers;
  data_opts.prefetch = run.prefetch;
  TrainData data = open_train_data(run.data, data_solver, data_opts);
  BatchSource& batches = *data.train;
  RUCHE_REQUIRE(batches.steps_per_epoch() > 0)
      << "the training split has " << data.train_size << " samples, fewer than one batch of "
      << solver.batch_size();

  // The net as the trainer builds it, from the seed's weights (or --init-weights).
  proto::NetParameter net_param = run.net;
  NetSource source = run.source;
  if (!run.model.empty()) {
    net_param = builtin_model(run.model, ModelOptions{data.sample_shape, 0});
    source.file = "--model " + run.model;
  }
  NetOptions net_opts;
  net_opts.batch_size = solver.batch_size();
  net_opts.sample_shape = data.sample_shape;
  net_opts.num_classes = data.classes;
  net_opts.device = run.device;
  net_opts.no_decay_bn_bias = solver.no_decay_bn_bias();
  net_opts.source = source;
  std::unique_ptr<Net> net = Net::build(net_param, net_opts);
  net->init_params(solver.random_seed());
  if (!run.init_weights.empty()) load_weights(*net, run.init_weights, run.init_partial);
  auto optimizer =
      make_optimizer(solver, net->param_table(), net->num_trainable(), net->params().device());

  LrFindResult result;
  const double growth = std::log(options.end_lr / options.start_lr) / (options.steps - 1);
  StepContext ctx;
  ctx.seed = solver.random_seed();
  double average = 0, best = INFINITY;
  std::uint32_t epoch = 0;
  std::int64_t left_in_epoch = 0;
  for (int i = 0; i < options.steps; ++i) {
    if (left_in_epoch == 0) {  // a short split: the test goes on into its next epoch
      batches.start_epoch(epoch++);
      left_in_epoch = batches.steps_per_epoch();
    }
    --left_in_epoch;
    const double lr = options.start_lr * std::exp(growth * i);
    batches.next(net->input(), net->labels());
    ctx.phase = Phase::train;
    ctx.epoch = epoch - 1;
    ctx.step = static_cast<std::uint32_t>(i);
    net->forward(ctx);
    const double loss = net->loss().item();
    // fastai's smoothing: an exponential moving average, debiased for its zero start.
    average = options.smoothing * average + (1 - options.smoothing) * loss;
    const double smoothed = average / (1 - std::pow(options.smoothing, i + 1));
    result.points.push_back({lr, loss, smoothed});
    if (verbose) {
      std::printf("lr-find step %3d/%d  lr %.3e  loss %.4f  smoothed %.4f\n", i + 1, options.steps,
                  lr, loss, smoothed);
    }
    if (!std::isfinite(smoothed) || (i > 0 && smoothed > options.diverge_factor * best)) {
      result.diverged = true;
      break;
    }
    best = std::min(best, smoothed);
    net->backward(ctx, false);
    const GradStats stats = grad_stats(net->grads(), net->num_trainable());
    if (!stats.finite) {
      result.diverged = true;
      break;
    }
    clip_grad_norm(net->grads(), net->num_trainable(), stats, solver.clip_grad_norm());
    optimizer->step(net->params(), net->grads(), static_cast<float>(lr));
  }
  suggest_lr(result);
  return result;
}

void suggest_lr(LrFindResult& result) {
  const auto& p = result.points;
  RUCHE_REQUIRE(!p.empty()) << "lr-find: no step was taken";
  std::size_t at_min = 0;
  for (std::size_t i = 1; i < p.size(); ++i) {
    if (p[i].smoothed_loss < p[at_min].smoothed_loss) at_min = i;
  }
  result.min_loss_lr = p[at_min].lr;
  // d(smoothed loss) / d(log lr) by central differences, from a tenth of the way in (the
  // average's first values rest on few losses) up to the minimum.
  const std::size_t first = std::max<std::size_t>(1, p.size() / 10);
  double steepest = 0;
  result.steepest_lr = 0;
  for (std::size_t i = first; i + 1 < p.size() && i < at_min; ++i) {
    const double slope = (p[i + 1].smoothed_loss - p[i - 1].smoothed_loss) /
                         (std::log(p[i + 1].lr) - std::log(p[i - 1].lr));
    if (slope < steepest) {
      steepest = slope;
      result.steepest_lr = p[i].lr;
    }
  }
  if (at_min >= first + 4 && result.steepest_lr > 0) {
    result.suggested_lr = result.steepest_lr;
    result.suggested_by = "steepest descent";
  } else {
    result.suggested_lr = result.min_loss_lr / 10;
    result.suggested_by = "minimum / 10";
  }
}

std::string lr_find_json(const LrFindResult& r, const LrFindOptions& options) {
  JsonWriter j;
  j.begin_object();
  j.key("start_lr").value(options.start_lr);
  j.key("end_lr").value(options.end_lr);
  j.key("steps").value(options.steps);
  j.key("smoothing").value(options.smoothing);
  j.key("diverge_factor").value(options.diverge_factor);
  j.key("diverged").value(r.diverged);
  j.key("min_loss_lr").value(r.min_loss_lr);
  if (r.steepest_lr > 0) {
    j.key("steepest_lr").value(r.steepest_lr);
  } else {
    j.key("steepest_lr").null();
  }
  j.key("suggested_lr").value(r.suggested_lr);
  j.key("suggested_by").value(r.suggested_by);
  j.key("points").begin_array();
  for (const auto& p : r.points) {
    j.begin_object();
    j.key("lr").value(p.lr);
    j.key("loss").value(p.loss);
    j.key("smoothed_loss").value(p.smoothed_loss);
    j.end_object();
  }
  j.end_array();
  j.end_object();
  return j.str();
}

std::string lr_find_csv(const LrFindResult& r) {
  std::ostringstream out;
  out.precision(9);
  out << "lr,loss,smoothed_loss\n";
  for (const auto& p : r.points) out << p.lr << ',' << p.loss << ',' << p.smoothed_loss << '\n';
  return out.str();
}

}  // namespace ruche
