#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "engine/data/loader.h"
#include "engine/log/metrics_log.h"
#include "engine/log/progress.h"
#include "engine/log/tensorboard.h"
#include "engine/log/timeline.h"
#include "engine/metrics/classification.h"
#include "engine/metrics/eval_report.h"
#include "engine/models/models.h"
#include "engine/optim/grad_norm.h"
#include "engine/optim/lr_schedule.h"
#include "engine/optim/loss_scaler.h"
#include "engine/optim/optimizer.h"
#include "engine/proto/text_format.h"
#include "engine/tensor/allocator.h"
#include "engine/train/eval_run.h"
#include "engine/train/checkpointing.h"
#include "engine/train/ema.h"
#include "engine/train/discipline.h"
#include "engine/train/evaluate.h"
#include "engine/train/fault.h"
#include "engine/train/tensorboard_log.h"
#include "engine/train/train_data.h"
#include "engine/train/weights.h"
#include "ops/cuda/runtime.h"
#include "ops/ops.h"

namespace ruche {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  RUCHE_REQUIRE(out) << path.string() << ": cannot write";
  out << text;
}

// Top-1 hits of the first n rows of probabilities against labels (host tensors).
std::int64_t correct_in(const Tensor& probs, const Tensor& labels, std::int64_t n) {
  const Tensor p = probs.to(Device::cpu());
  const Tensor y = labels.to(Device::cpu());
  const std::int64_t c = p.size(1);
  std::int64_t hits = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    hits += argmax(p.data<float>() + i * c, static_cast<int>(c)) == y.data<std::int32_t>()[i];
  }
  return hits;
}

// Loss, top-1 hits and samples summed over some steps (a progress interval, an epoch).
struct Tally {
  double loss = 0;
  std::int64_t hits = 0, seen = 0;
  void add(const StepVotes& v) {
    loss += v[StepVotes::loss_sum];
    hits += static_cast<std::int64_t>(v[StepVotes::hits]);
    seen += static_cast<std::int64_t>(v[StepVotes::samples]);
  }
  double mean_loss() const { return seen ? loss / static_cast<double>(seen) : 0; }
  double accuracy() const {
    return seen ? static_cast<double>(hits) / static_cast<double>(seen) : 0;
  }
};

// Watches a validation metric for early stopping and for keeping the best weights.
struct BestTracker {
  bool higher_is_better = true;
  float min_delta = 0;
  double best = NAN;
  int best_epoch = 0;
  int epochs_without_gain = 0;
  // Whether `value` is an improvement (and records it).
  bool update(double value, int epoch) {
    const bool better = std::isnan(best) || (higher_is_better ? value > best + min_delta
                                                              : value < best - min_delta);
    if (better) {
      best = value;
      best_epoch = epoch;
      epochs_without_gain = 0;
    } else {
      ++epochs_without_gain;
    }
    return better;
  }
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out.append(out.empty() ? "" : ", ").append(n);
  return out;
}

void print_nan_diagnosis(Net& net, std::int64_t step, float lr) {
  const std::string where = net.first_nonfinite();
  std::fprintf(stderr,
               "ruche: training diverged at step %lld: the loss or a gradient is not finite "
               "(first seen in %s).\n"
               "  Try a lower learning rate (now %g), stronger weight decay, gradient clipping "
               "(--clip-grad-norm), or warmup.\n",
               static_cast<long long>(step), where.empty() ? "the loss" : where.c_str(), lr);
}

void warn_chance_level(int classes, double train_acc, double val_acc) {
  std::fprintf(stderr,
               "ruche: warning: accuracy is still at chance level (train %.1f%%, val %.1f%%, "
               "chance %.1f%%). Usual causes: labels misaligned with the data, a learning rate "
               "far too low (or so high it saturates), weights initialised to zero, a frozen "
               "output layer (lr_mult 0), or inputs that were not normalised.\n",
               100 * train_acc, 100 * val_acc, 100.0 / classes);
}

}  // namespace

proto::SolverParameter default_solver() {
  proto::SolverParameter s;
  s.set_type("sgd");
  s.set_base_lr(0.05f);
  s.set_momentum(0.9f);
  s.set_nesterov(true);
  s.set_weight_decay(5e-4f);
  s.set_no_decay_bn_bias(true);
  s.set_lr_policy("cosine");
  s.set_warmup_epochs(0.5f);
  s.set_batch_size(128);
  s.set_max_epochs(10);
  s.set_display(100);
  return s;
}

proto::SolverParameter effective_solver(const proto::SolverParameter& given, int ranks) {
  RUCHE_REQUIRE(given.lr_scaling() == "none" || given.lr_scaling() == "linear")
      << "lr_scaling must be none or linear, got '" << given.lr_scaling() << "'";
  proto::SolverParameter s = given;
  if (given.lr_scaling() != "linear") return s;
  const double global = static_cast<double>(given.batch_size()) * ranks * given.iter_size();
  const double k = global / 256.0;
  s.set_base_lr(static_cast<float>(given.base_lr() * k));
  s.set_min_lr(static_cast<float>(given.min_lr() * k));
  if (given.warmup_steps() == 0 && given.warmup_epochs() == 0) {
    if (given.max_iter() > 0) {
      s.set_warmup_steps(std::max<std::int64_t>(1, given.max_iter() / 18));
    } else {
      s.set_warmup_epochs(std::min(5.0f, static_cast<float>(given.max_epochs()) / 18.0f));
    }
  }
  return s;
}

int train(const TrainRun& run, Communicator* comm) {
  const proto::SolverParameter solver =
      effective_solver(run.solver, comm ? comm->size() : 1);
  // Solver names are checked before any data is read: a typo fails in a second, not a minute.
  const auto types = optimizer_types();
  RUCHE_REQUIRE(std::find(types.begin(), types.end(), solver.type()) != types.end())
      << "solver: unknown optimizer type '" << solver.type() << "' (valid: " << join(types) << ")";
  const auto policies = lr_policies();
  RUCHE_REQUIRE(std::find(policies.begin(), policies.end(), solver.lr_policy()) != policies.end())
      << "solver: unknown lr_policy '" << solver.lr_policy() << "' (valid: " << join(policies)
      << ")";
  ops::set_num_threads(run.threads);
  use_device(run.device);  // before the loader's pinned slots: no stray context on GPU 0
  const int rank = comm ? comm->rank() : 0;
  const int ranks = comm ? comm->size() : 1;
  ops::set_gpu_math(run.gpu_math);
  const ops::Precision precision = run.gpu_math.precision;
  if (run.device.is_cuda()) {
    RUCHE_REQUIRE(ranks == 1 || comm->takes_device_buffers())
        << "--device cuda with " << ranks << " ranks: gradients between GPUs travel by NCCL, "
        << "and this communicator takes host buffers only (comm/nccl, tools/train.cc)";
  } else {
    RUCHE_REQUIRE(precision == ops::Precision::fp32)
        << "--precision " << ops::precision_name(precision)
        << " applies to --device cuda; the CPU computes in fp32";
  }
  const bool lead = rank == 0;  // writes the run directory; the others only train
  const std::filesystem::path out = run.out_dir;
  if (lead) std::filesystem::create_directories(out);
  const Fault fault = Fault::from_env();

  // ---- data ----
  TrainDataOptions data_opts;
  data_opts.rank = rank;
  data_opts.ranks = ranks;
  data_opts.device = run.device;
  data_opts.workers = run.data_workers;
  data_opts.prefetch = run.prefetch;
  data_opts.preprocess = run.preprocess;
  TrainData data = open_train_data(run.data, solver, data_opts);
  BatchSource& train_loader = *data.train;
  const int classes = data.classes;
  RUCHE_REQUIRE(train_loader.steps_per_epoch() > 0)
      << "the training split has " << data.train_size << " samples, fewer than one batch of "
      << solver.batch_size();
  BatchSource* val_loader = data.val.get();
  check_decisions_avoid_test(solver, val_loader != nullptr);

  // ---- net ----
  proto::NetParameter net_param = run.net;
  NetSource source = run.source;
  if (!run.model.empty()) {
    net_param = builtin_model(run.model, ModelOptions{data.sample_shape, 0});
    source.file = "--model " + run.model;
  }
  RUCHE_REQUIRE(solver.label_smoothing() >= 0 && solver.label_smoothing() < 1)
      << "label_smoothing must be in [0, 1), got " << solver.label_smoothing();
  if (solver.label_smoothing() > 0) {  // where the net leaves it unset
    for (auto& layer : *net_param.mutable_layer()) {
      if (layer.type() == "SoftmaxWithLoss" && !layer.loss_param().has_label_smoothing()) {
        layer.mutable_loss_param()->set_label_smoothing(solver.label_smoothing());
      }
    }
  }
  if (!data.class_weights.empty()) {  // --class-weights, where the net leaves them unset
    std::printf("class weights (%s):", solver.class_weights().c_str());
    for (float w : data.class_weights) std::printf(" %.4g", static_cast<double>(w));
    std::printf("\n");
    for (auto& layer : *net_param.mutable_layer()) {
      if (layer.type() == "SoftmaxWithLoss" && layer.loss_param().class_weight_size() == 0) {
        for (float w : data.class_weights) layer.mutable_loss_param()->add_class_weight(w);
      }
    }
  }
  NetOptions net_opts;
  net_opts.batch_size = solver.batch_size();
  net_opts.sample_shape = data.sample_shape;
  net_opts.num_classes = classes;
  net_opts.device = run.device;
  net_opts.compute_dtype = precision == ops::Precision::bf16   ? DType::bf16
                           : precision == ops::Precision::fp16 ? DType::f16
                                                               : DType::f32;
  net_opts.no_decay_bn_bias = solver.no_decay_bn_bias();
  net_opts.source = source;
  std::unique_ptr<Net> net = Net::build(net_param, net_opts);
  net->init_params(solver.random_seed());
  if (!run.init_weights.empty()) {
    const LoadReport r = load_weights(*net, run.init_weights, run.init_partial);
    std::printf("loaded %d tensors from %s", r.loaded, run.init_weights.c_str());
    for (const auto& m : r.missing) std::printf("\n  missing (kept initialised): %s", m.c_str());
    for (const auto& u : r.unexpected) std::printf("\n  unexpected (ignored): %s", u.c_str());
    for (const auto& m : r.mismatched) std::printf("\n  shape mismatch (kept initialised): %s",
                                                   m.c_str());
    std::printf("\n");
  }

  // ---- the other ranks: the same net and solver, rank 0's weights ----
  DataParallel dp(comm, *net, run.parallel);
  dp.start(to_prototxt(net_param) + to_prototxt(solver) + data.kind +
           std::to_string(data.train_size));

  // ---- the run directory: what was used (the solver as given: --lr-scaling applies anew) ----
  MetricsLog metrics;
  if (lead) {
    write_file(out / "net.prototxt", to_prototxt(net_param));
    write_file(out / "solver.prototxt", to_prototxt(run.solver));
    std::string labels;
    for (const auto& name : data.class_names) labels += name + "\n";
    write_file(out / "labels.txt", labels);
    write_preprocess(out.string(), data.preprocess, run.preprocess.record_dir);
    metrics.open((out / "metrics.jsonl").string());
  }
  TensorBoardWriter tb;  // RUN/events.out.tfevents.*: rank 0, unless --no-tensorboard
  if (lead && run.tensorboard) tb.open(out.string());

  std::printf("%s", net->summary().c_str());
  std::printf("data: %s, %lld train / %lld val / %lld test samples, %d classes\n",
              data.kind.c_str(), static_cast<long long>(data.train_size),
              static_cast<long long>(data.val_size), static_cast<long long>(data.test_size),
              classes);
  std::printf("preprocess: %s (%s)\n", describe_preprocess(data.preprocess).c_str(),
              run.preprocess.record ? run.preprocess.record_path().c_str() : "--normalize");

  // ---- solver ----
  const std::int64_t steps_per_epoch = train_loader.steps_per_epoch() / solver.iter_size();
  RUCHE_REQUIRE(steps_per_epoch > 0) << "iter_size " << solver.iter_size()
                                     << " exceeds the batches in an epoch";
  const std::int64_t total_steps =
      solver.max_iter() > 0 ? solver.max_iter()
                            : static_cast<std::int64_t>(std::max(solver.max_epochs(), 1)) *
                                  steps_per_epoch;
  const int epochs = static_cast<int>((total_steps + steps_per_epoch - 1) / steps_per_epoch);
  check_lr_schedule(solver, steps_per_epoch, total_steps);
  auto optimizer = make_optimizer(solver, net->param_table(), net->num_trainable(),
                                  net->params().device(), dp.update_range().begin,
                                  dp.update_range().end);  // --zero 1: this rank's range

  // ---- checkpoints: where to resume from, and how to save ----
  // --ema: the average starts as the weights every rank now holds, and is checkpointed with them.
  std::optional<WeightAverage> ema;
  if (solver.ema_decay() != 0) ema.emplace(*net, solver.ema_decay());
  StateLayout layout = training_state_layout(*net, *optimizer);
  if (ema) ema->add_to(layout);
  CheckpointMeta meta;
  meta.world_size = ranks;
  meta.threads = ops::num_threads();
  meta.net = to_prototxt(net_param);
  meta.solver = to_prototxt(run.solver);
  meta.net_hash = state_hash(layout);
  meta.preprocess = preprocess_json(data.preprocess);
  Checkpointer checkpoints(run.checkpoint, run.out_dir, dp, layout, meta, fault);
  // Where training starts: the beginning, or the checkpoint --resume names.
  const TrainingPosition at = checkpoints.resume(*optimizer);
  std::printf("solver: %s lr %g (%s%s), batch %d x %d ranks x %d accumulated = %d, %lld steps "
              "(%d epochs)\n",
              solver.type().c_str(), solver.base_lr(), solver.lr_policy().c_str(),
              solver.lr_scaling() == "linear" ? ", scaled linearly" : "", solver.batch_size(),
              ranks, solver.iter_size(), solver.batch_size() * ranks * solver.iter_size(),
              static_cast<long long>(total_steps), epochs);

  // ---- the loop ----
  const Tensor& probs = net_probabilities(*net);
  BestTracker best;
  best.higher_is_better = solver.monitor() != "val_loss";
  best.min_delta = solver.min_delta();
  RUCHE_REQUIRE(solver.monitor() == "val_acc" || solver.monitor() == "val_loss")
      << "monitor must be val_acc or val_loss, got '" << solver.monitor() << "'";
  RUCHE_REQUIRE(solver.on_nan() == "stop" || solver.on_nan() == "skip")
      << "on_nan must be stop or skip, got '" << solver.on_nan() << "'";
  StepContext ctx;
  ctx.seed = solver.random_seed();
  ctx.sync_bn = dp.sync_bn();
  const StopSignals signals;
  // --timeline: every layer's forward and backward, the gradient wait and the optimizer.
  std::unique_ptr<Timeline> timeline;
  std::vector<std::string> forward_names, backward_names;  // outlive the events naming them
  if (run.timeline) {
    timeline = std::make_unique<Timeline>();
    for (const auto& layer : net->layers()) {
      forward_names.push_back("forward " + layer->name());
      backward_names.push_back("backward " + layer->name());
    }
    net->set_layer_timer([&](std::size_t li, bool backward, Clock::time_point start,
                             Clock::time_point end) {
      timeline->add(backward ? &backward_names[li] : &forward_names[li],
                    backward ? "backward" : "forward", Timeline::compute, start, end);
    });
    dp.barrier();  // every rank's origin at the same moment
    timeline->set_origin(Clock::now());
    dp.set_timeline(timeline.get());
  }
  // fp16: dynamic loss scaling; a step whose scaled gradients overflow is skipped and counted,
  // not a divergence (bf16 has fp32's range and needs none).
  std::optional<LossScaler> scaler;
  if (precision == ops::Precision::fp16) {
    scaler.emplace();
    if (at.loss_scale > 0) scaler->restore(at.loss_scale, at.loss_scale_growth_tracker, 0);
  }
  StopRequest stop_request = StopRequest::none;
  std::int64_t step = at.step, skipped = at.skipped_steps;
  auto micro = static_cast<std::uint32_t>(at.micro_batches);
  best.best = at.best;
  best.best_epoch = at.best_epoch;
  best.epochs_without_gain = at.epochs_without_gain;
  const auto started =
      Clock::now() - std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(at.elapsed_seconds));
  // The position in an epoch is in samples of the global batch, whatever the world size was:
  // resumed with another one, it rounds down to a whole step of this one.
  const std::int64_t samples_per_step =
      static_cast<std::int64_t>(solver.batch_size()) * ranks * solver.iter_size();
  std::int64_t first_step_in_epoch = at.samples_in_epoch / samples_per_step;
  if (at.samples_in_epoch % samples_per_step != 0) {
    std::printf("resuming at sample %lld of the epoch (the checkpoint's %lld, rounded down to a "
                "whole step of %lld samples)\n",
                static_cast<long long>(first_step_in_epoch * samples_per_step),
                static_cast<long long>(at.samples_in_epoch),
                static_cast<long long>(samples_per_step));
  }
  // Where training is after `steps_done` steps of `epoch`: what a checkpoint saves.
  auto position = [&](std::uint32_t epoch, std::int64_t steps_done) {
    TrainingPosition p;
    p.step = step;
    p.epoch = epoch;
    p.samples_in_epoch = steps_done * samples_per_step;
    p.data_position = train_loader.stream_position();  // shards: which samples were read
    if (steps_done == steps_per_epoch) {  // the epoch is over: the next one from its start
      p.epoch = epoch + 1;
      p.samples_in_epoch = 0;
      p.data_position.clear();
    }
    p.micro_batches = micro;
    p.skipped_steps = skipped;
    p.best = best.best;
    p.best_epoch = best.best_epoch;
    p.epochs_without_gain = best.epochs_without_gain;
    p.elapsed_seconds = seconds_since(started);
    if (scaler) {
      p.loss_scale = scaler->scale();
      p.loss_scale_growth_tracker = scaler->growth_tracker();
    }
    return p;
  };
  TrainingPosition now = at;  // after the last step (and validation) done
  bool stop = false;
  for (int epoch = static_cast<int>(at.epoch); epoch < epochs && !stop; ++epoch) {
    const bool resumed_epoch = epoch == static_cast<int>(at.epoch);
    std::int64_t first_step = resumed_epoch ? first_step_in_epoch : 0;
    if (resumed_epoch && !at.data_position.empty()) {
      // Shards resume from the samples they read; what is left of the epoch (at this world size)
      // is the rest of its steps.
      train_loader.start_from(at.data_position);
      first_step = std::max<std::int64_t>(
          0, steps_per_epoch - train_loader.steps_this_epoch() / solver.iter_size());
    } else {
      train_loader.start_epoch(static_cast<std::uint32_t>(epoch), first_step * solver.iter_size());
    }
    ctx.epoch = static_cast<std::uint32_t>(epoch);
    Tally interval, whole_epoch;
    auto interval_start = Clock::now();
    std::int64_t s = first_step;
    for (; s < steps_per_epoch && step < total_steps; ++s) {
      fault.maybe_fail(Fault::Point::step_start, step, rank);
      const float lr = lr_at(solver, step, steps_per_epoch, total_steps);
      StepVotes votes;  // this rank's; summed over ranks below
      ctx.loss_scale = scaler ? scaler->scale() : 1.0f;
      for (int k = 0; k < solver.iter_size(); ++k) {
        const std::int64_t n = train_loader.next(net->input(), net->labels());
        RUCHE_CHECK(n == solver.batch_size()) << "the training loader returned a short batch";
        ctx.phase = Phase::train;
        ctx.step = micro++;
        net->forward(ctx);
        const bool last = k + 1 == solver.iter_size();
        if (last) dp.share_buffers();
        const float loss = net->loss().item();
        if (!std::isfinite(loss)) votes[StepVotes::nonfinite_loss] = 1;
        dp.reduce_next_backward(last);
        net->backward(ctx, k > 0);
        votes[StepVotes::loss_sum] += loss * static_cast<float>(n);
        votes[StepVotes::hits] += static_cast<float>(correct_in(probs, net->labels(), n));
        votes[StepVotes::samples] += static_cast<float>(n);
      }
      const StopRequest request = signals.requested();
      votes[StepVotes::stop] = request == StopRequest::checkpoint_and_stop;
      votes[StepVotes::interrupt] = request == StopRequest::interrupt;
      votes[StepVotes::checkpoint_due] = checkpoints.vote_due();
      votes[StepVotes::shard_written] = checkpoints.vote_written();
      const auto wait_start = Clock::now();
      votes = dp.finish_step(votes);  // every rank now holds the same sums and gradients
      if (timeline) {
        timeline->add("wait for gradients", "comm_wait", Timeline::compute, wait_start,
                      Clock::now());
      }
      // The mean over micro-batches, and the loss scale taken back out.
      float unscale = solver.iter_size() > 1 ? 1.0f / static_cast<float>(solver.iter_size()) : 1;
      if (scaler) unscale *= scaler->inv_scale();
      if (unscale != 1.0f) ops::scale(unscale, dp.update_grads());
      const GradStats stats = dp.grad_stats();
      if (votes[StepVotes::stop] > 0) stop_request = StopRequest::checkpoint_and_stop;
      if (votes[StepVotes::interrupt] > 0 && stop_request == StopRequest::none) {
        stop_request = StopRequest::interrupt;
      }
      if (scaler && votes[StepVotes::nonfinite_loss] == 0 && !scaler->update(stats.finite)) {
        ++skipped;  // fp16 overflow: the scale is backed off and the step not taken
        ++step;
        if (stop_request != StopRequest::none) break;
        continue;
      }
      if (votes[StepVotes::nonfinite_loss] > 0 || !stats.finite) {
        if (solver.on_nan() == "skip") {
          ++skipped;
          ++step;
          if (stop_request != StopRequest::none) break;
          continue;
        }
        if (lead) print_nan_diagnosis(*net, step, lr);
        checkpoints.finish();  // a save from before the divergence is still good
        metrics.write(MetricsRecord("train").add("epoch", epoch + 1).add("step", step)
                          .add("loss", std::nan("")).add("diverged", 1));
        return kExitDiverged;
      }
      interval.add(votes);
      whole_epoch.add(votes);
      clip_grad_norm(dp.update_grads(), dp.update_grads().numel(), stats, solver.clip_grad_norm());
      const auto optimizer_start = Clock::now();
      optimizer->step(dp.update_params(), dp.update_grads(), lr);
      dp.share_parameters();  // --zero 1: every rank's updated range to every rank
      if (ema) ema->update();
      if (timeline) {
        timeline->add("optimizer", "optimizer", Timeline::compute, optimizer_start, Clock::now());
      }
      ++step;

      if (tb.is_open() && run.tb_histograms > 0 && step % run.tb_histograms == 0) {
        log_param_histograms(tb, *net, dp.update_grads(), dp.update_range(), step);
        tb.flush();
      }
      if (step % solver.display() == 0 || step == total_steps) {
        const double elapsed = seconds_since(interval_start);
        Progress p;
        p.epoch = epoch + 1;
        p.epochs = epochs;
        p.step = step;
        p.steps = total_steps;
        p.loss = interval.mean_loss();
        p.accuracy = interval.accuracy();
        p.lr = lr;
        p.images_per_second = static_cast<double>(interval.seen) / elapsed;
        p.eta_seconds = seconds_since(started) / static_cast<double>(step) *
                        static_cast<double>(total_steps - step);
        std::printf("%s\n", progress_line(p).c_str());
        std::fflush(stdout);
        MetricsRecord record("train");
        record.add("epoch", epoch + 1).add("step", step).add("loss", p.loss)
            .add("acc", p.accuracy).add("lr", p.lr).add("img_per_s", p.images_per_second)
            .add("time_s", seconds_since(started)).add("saving", checkpoints.saving() ? 1 : 0);
        if (scaler) record.add("loss_scale", static_cast<double>(scaler->scale()));
        if (run.device.is_cuda()) {  // peak device memory held by tensors so far
          const auto peak = cuda::allocator_stats(run.device.index).peak_allocated_bytes;
          record.add("gpu_peak_mib", static_cast<double>(peak) / (1 << 20));
        }
        metrics.write(record);
        if (tb.is_open()) {
          tb.add_scalar("train/loss", p.loss, step);
          tb.add_scalar("train/acc", p.accuracy, step);
          tb.add_scalar("train/lr", p.lr, step);
          tb.add_scalar("train/img_per_s", p.images_per_second, step);
          if (scaler) tb.add_scalar("train/loss_scale", scaler->scale(), step);
          log_param_norms(tb, *net, dp.update_grads(), dp.update_range(), step);
          tb.flush();
        }
        interval = Tally();
        interval_start = Clock::now();
      }
      if (stop_request != StopRequest::none) break;
      now = position(static_cast<std::uint32_t>(epoch), s + 1);
      // The epoch's last step saves after validation instead (with the best-so-far it finds).
      checkpoints.after_step(now, votes[StepVotes::checkpoint_due],
                             votes[StepVotes::shard_written], s + 1 == steps_per_epoch);
    }
    if (stop_request != StopRequest::none) {
      now = position(static_cast<std::uint32_t>(epoch), s + 1);  // the end-of-run save skips it
      checkpoints.save_now(now);
      break;
    }

    // ---- end of epoch: validation, best weights, early stopping, chance level ----
    dp.check_in_sync(step);
    if (!grad_stats(net->params(), net->params().numel()).finite) {
      // Finite updates can still overflow the weights (--on-nan skip cannot undo those).
      if (lead) print_nan_diagnosis(*net, step, lr_at(solver, step, steps_per_epoch, total_steps));
      return kExitDiverged;
    }
    const double train_acc = whole_epoch.accuracy();
    RUCHE_REQUIRE(solver.eval_every_epochs() >= 1)
        << "eval_every_epochs must be >= 1, got " << solver.eval_every_epochs();
    const bool last_epoch = epoch + 1 == epochs || step >= total_steps;
    if (val_loader && ((epoch + 1) % solver.eval_every_epochs() == 0 || last_epoch)) {
      EvalAccumulator acc(classes, false, data.val_size);
      double nll_sum = evaluate(*net, *val_loader, acc) * static_cast<double>(acc.samples());
      dp.reduce_evaluation(acc, nll_sum);
      const double val_loss = acc.samples() ? nll_sum / static_cast<double>(acc.samples()) : 0;
      const double val_acc = acc.samples() ? static_cast<double>(acc.top1_correct()) /
                                                 static_cast<double>(acc.samples())
                                           : 0;
      const bool has_top5 = classes > 5 && acc.samples() > 0;
      const double val_top5 = has_top5 ? static_cast<double>(acc.top5_correct()) /
                                             static_cast<double>(acc.samples())
                                       : 0;
      std::printf("epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%", epoch + 1,
                  epochs, whole_epoch.mean_loss(), 100 * train_acc, val_loss, 100 * val_acc);
      if (has_top5) std::printf(" top-5 %.2f%%", 100 * val_top5);
      std::printf("  (%s)\n", human_duration(seconds_since(started)).c_str());
      MetricsRecord record("val");
      record.add("epoch", epoch + 1).add("step", step).add("loss", val_loss).add("acc", val_acc);
      if (has_top5) record.add("top5", val_top5);
      if (ema) {  // the averaged weights on the same split, then the raw ones back
        ema->swap();
        EvalAccumulator ema_acc(classes, false, data.val_size);
        double ema_nll =
            evaluate(*net, *val_loader, ema_acc) * static_cast<double>(ema_acc.samples());
        dp.reduce_evaluation(ema_acc, ema_nll);
        ema->swap();
        const double n = static_cast<double>(std::max<std::int64_t>(ema_acc.samples(), 1));
        record.add("ema_loss", ema_nll / n)
            .add("ema_acc", static_cast<double>(ema_acc.top1_correct()) / n);
        std::printf("epoch %d/%d  ema (decay %g) val loss %.4f acc %.2f%%\n", epoch + 1, epochs,
                    static_cast<double>(ema->decay()), ema_nll / n,
                    100.0 * static_cast<double>(ema_acc.top1_correct()) / n);
      }
      metrics.write(record.add("time_s", seconds_since(started)));
      if (tb.is_open()) {
        tb.add_scalar("val/loss", val_loss, step);
        tb.add_scalar("val/acc", val_acc, step);
        if (has_top5) tb.add_scalar("val/top5", val_top5, step);
        log_confusion_image(tb, "val", acc.confusion(), step);
        tb.flush();
      }
      if (best.update(best.higher_is_better ? val_acc : val_loss, epoch + 1) && lead) {
        save_weights(*net, (out / "best.npz").string());
      }
      if (solver.patience() > 0 && best.epochs_without_gain >= solver.patience()) {
        std::printf("early stopping: %s has not improved for %d epochs (best %.4f at epoch %d)\n",
                    solver.monitor().c_str(), solver.patience(), best.best, best.best_epoch);
        stop = true;
      }
      if (solver.target_accuracy() > 0 && val_acc >= solver.target_accuracy()) {
        std::printf("time to accuracy: validation top-1 %.2f%% >= target %.2f%% after %d epochs "
                    "in %s (%.0f s)\n",
                    100 * val_acc, 100.0 * solver.target_accuracy(), epoch + 1,
                    human_duration(seconds_since(started)).c_str(), seconds_since(started));
        metrics.write(MetricsRecord("target").add("epoch", epoch + 1).add("step", step)
                          .add("acc", val_acc).add("time_to_accuracy_s", seconds_since(started)));
        stop = true;
      }
      const double chance = 1.0 / classes;
      if (lead && epoch + 1 == solver.chance_warning_epochs() && train_acc < 1.5 * chance &&
          val_acc < 1.5 * chance) {
        warn_chance_level(classes, train_acc, val_acc);
      }
    }
    now = position(static_cast<std::uint32_t>(epoch), s);
    if (!stop && step < total_steps) checkpoints.save_async(now);  // every epoch
  }
  checkpoints.save_now(now);  // the end of the run (or of its early stop)
  if (skipped) {
    std::printf("skipped %lld steps with non-finite values%s\n", static_cast<long long>(skipped),
                scaler ? " (fp16 gradients that overflowed the dynamic loss scale)" : "");
  }
  if (scaler) std::printf("fp16 loss scale now %g\n", static_cast<double>(scaler->scale()));
  if (timeline) {
    net->set_layer_timer(nullptr);
    dp.set_timeline(nullptr);
    std::vector<std::string> events = dp.gather_text(timeline->events_json(rank));
    if (lead) {
      write_file(out / "timeline.json", timeline_file(events, timeline->dropped()));
      std::printf("timeline of %d rank%s in %s (chrome://tracing or ui.perfetto.dev)\n", ranks,
                  ranks > 1 ? "s" : "", (out / "timeline.json").string().c_str());
    }
  }
  if (lead) save_weights(*net, (out / "model.npz").string());
  if (ema) {
    ema->swap();
    if (lead) save_weights(*net, (out / "ema.npz").string());
    ema->swap();
  }
  std::printf("trained %lld steps in %s; weights in %s\n", static_cast<long long>(step),
              human_duration(seconds_since(started)).c_str(), (out / "model.npz").string().c_str());
  if (stop_request != StopRequest::none) {
    const bool checkpoint = stop_request == StopRequest::checkpoint_and_stop;
    std::printf("stopped by a %s signal after step %lld%s\n",
                checkpoint ? "SIGUSR1/SIGTERM (checkpoint and stop)" : "SIGUSR2/SIGINT (interrupt)",
                static_cast<long long>(step),
                checkpoints.enabled() ? "; resume with --resume auto" : " (checkpoints are off)");
    return checkpoint ? kExitCheckpointed : kExitInterrupted;
  }

  // ---- the test split, once, for confirmation ----
  if (data.splits.test) {
    if (solver.patience() > 0 && best.best_epoch > 0) {
      // Rank 0 wrote best.npz (other nodes may not see it): it loads, the others receive.
      if (lead) load_weights(*net, (out / "best.npz").string(), false);
      dp.broadcast_state();
      std::printf("test on the best validation weights (epoch %d)\n", best.best_epoch);
    }
    SplitEvaluation test = evaluate_split(*net, data.splits.test, "test", data.norm, &dp);
    EvalReport& report = test.report;
    report.class_names = data.class_names;
    report.extra.emplace_back("step", static_cast<double>(step));
    if (lead) write_eval_report((out / "eval-test.json").string(), report);
    metrics.write(MetricsRecord("test").add("step", step).add("loss", test.loss)
                      .add("acc", report.result.accuracy));
    tb.add_scalar("test/loss", test.loss, step);
    tb.add_scalar("test/acc", report.result.accuracy, step);
    tb.flush();
    std::printf("\n%s", render_eval_report(report).c_str());
  }
  return kExitOk;
}

}  // namespace ruche
