#include "engine/train/trainer.h"

#include "engine/train/trainer_run.h"

namespace ruche {

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

namespace trainer_detail {

int Trainer::run() {
  check_solver_and_device();
  if (lead_) std::filesystem::create_directories(out_);
  fault_ = Fault::from_env();
  open_data();
  build_net();
  write_run_directory();
  plan_steps();
  open_checkpoints();
  prepare_loop();

  TrainingPosition now = at_;  // after the last step (and validation) done
  bool stop = false;
  for (int epoch = static_cast<int>(at_.epoch); epoch < epochs_ && !stop; ++epoch) {
    const EpochEnd end = train_epoch(epoch);
    if (end == EpochEnd::diverged) return kExitDiverged;
    if (end == EpochEnd::stopped) {
      now = position(static_cast<std::uint32_t>(epoch), steps_done_in_epoch_);
      checkpoints_->save_now(now);  // the end-of-run save then skips it
      break;
    }
    if (end == EpochEnd::validation_stop) {
      now = position(static_cast<std::uint32_t>(epoch), steps_done_in_epoch_);
      break;
    }
    dp_->check_in_sync(step_);
    if (!weights_finite()) return kExitDiverged;
    stop = validate(epoch, true);
    now = position(static_cast<std::uint32_t>(epoch), steps_done_in_epoch_);
    if (!stop && step_ < total_steps_) checkpoints_->save_async(now);  // every epoch
  }
  if (!checkpoints_->save_now(now)) {  // the end of the run (or of its early stop)
    if (lead_) {
      std::fprintf(stderr,
                   "ruche: error: the final checkpoint could not be written (the disk is "
                   "full); exit %d\n",
                   kExitSaveFailed);
    }
    return kExitSaveFailed;
  }
  finish_run();
  if (stop_request_ != StopRequest::none) return stopped_by_signal();
  test_once();
  return kExitOk;
}

// ---- set-up ----

// Solver names are checked before any data is read: a typo fails in a second, not a minute.
void Trainer::check_solver_and_device() {
  const auto types = optimizer_types();
  RUCHE_REQUIRE(std::find(types.begin(), types.end(), solver_.type()) != types.end())
      << "solver: unknown optimizer type '" << solver_.type() << "' (valid: " << join(types) << ")";
  const auto policies = lr_policies();
  RUCHE_REQUIRE(std::find(policies.begin(), policies.end(), solver_.lr_policy()) != policies.end())
      << "solver: unknown lr_policy '" << solver_.lr_policy() << "' (valid: " << join(policies)
      << ")";
  ops::set_num_threads(run_.threads);
  use_device(run_.device);  // before the loader's pinned slots: no stray context on GPU 0
  ops::set_gpu_math(run_.gpu_math);
  const ops::Precision precision = run_.gpu_math.precision;
  if (run_.device.is_cuda()) {
    RUCHE_REQUIRE(ranks_ == 1 || comm_->takes_device_buffers())
        << "--device cuda with " << ranks_ << " ranks: gradients between GPUs travel by NCCL, "
        << "and this communicator takes host buffers only (comm/nccl, tools/train.cc)";
  } else {
    RUCHE_REQUIRE(precision == ops::Precision::fp32)
        << "--precision " << ops::precision_name(precision)
        << " applies to --device cuda; the CPU computes in fp32";
  }
}

void Trainer::open_data() {
  TrainDataOptions data_opts;
  data_opts.rank = rank_;
  data_opts.ranks = ranks_;
  data_opts.device = run_.device;
  data_opts.workers = run_.data_workers;
  data_opts.prefetch = run_.prefetch;
  data_opts.preprocess = run_.preprocess;
  DataSpec spec = run_.data;
  spec.ignore_label = ignore_label_of(run_.net);
  data_ = open_train_data(spec, solver_, data_opts);
  train_loader_ = data_.train.get();
  RUCHE_REQUIRE(train_loader_->steps_per_epoch() > 0)
      << "the training split has " << data_.train_size << " samples, fewer than one batch of "
      << solver_.batch_size();
  val_loader_ = data_.val.get();
  check_decisions_avoid_test(solver_, val_loader_ != nullptr);
}

// The net (--model or --net) with the solver's label smoothing and class weights where it leaves
// them unset, initialised (or loaded), and every rank holding rank 0's weights.
void Trainer::build_net() {
  net_param_ = run_.net;
  NetSource source = run_.source;
  if (!run_.model.empty()) {
    net_param_ = builtin_model(run_.model, ModelOptions{data_.sample_shape, 0, run_.bottleneck});
    source.file = "--model " + run_.model;
  }
  task_ = task_of(net_param_, solver_, data_.target_shape.ndim() > 0);
  monitor_ = monitor_of(task_, solver_);
  RUCHE_REQUIRE(solver_.label_smoothing() >= 0 && solver_.label_smoothing() < 1)
      << "label_smoothing must be in [0, 1), got " << solver_.label_smoothing();
  if (solver_.label_smoothing() > 0) {  // where the net leaves it unset
    for (auto& layer : *net_param_.mutable_layer()) {
      if (layer.type() == "SoftmaxWithLoss" && !layer.loss_param().has_label_smoothing()) {
        layer.mutable_loss_param()->set_label_smoothing(solver_.label_smoothing());
      }
    }
  }
  if (!data_.class_weights.empty()) {  // --class-weights, where the net leaves them unset
    std::printf("class weights (%s):", solver_.class_weights().c_str());
    for (float w : data_.class_weights) std::printf(" %.4g", static_cast<double>(w));
    std::printf("\n");
    for (auto& layer : *net_param_.mutable_layer()) {
      if (layer.type() == "SoftmaxWithLoss" && layer.loss_param().class_weight_size() == 0) {
        for (float w : data_.class_weights) layer.mutable_loss_param()->add_class_weight(w);
      }
    }
  }
  const ops::Precision precision = run_.gpu_math.precision;
  NetOptions net_opts;
  net_opts.batch_size = solver_.batch_size();
  net_opts.sample_shape = data_.sample_shape;
  net_opts.num_classes = data_.classes;
  // The loaders' target: the input itself (--reconstruct), an npz's float y, else the class.
  if (task_ != Task::classification) net_opts.target_shape = data_.target_shape;
  net_opts.device = run_.device;
  net_opts.compute_dtype = precision == ops::Precision::bf16   ? DType::bf16
                           : precision == ops::Precision::fp16 ? DType::f16
                                                               : DType::f32;
  net_opts.no_decay_bn_bias = solver_.no_decay_bn_bias();
  net_opts.sync_bn = run_.parallel.sync_bn;
  net_opts.source = source;
  net_ = Net::build(net_param_, net_opts);
  RUCHE_REQUIRE(net_->has_loss())
      << source.file << ": the net has no loss layer (a deploy net): ruche train needs one, e.g. "
      << "SoftmaxWithLoss on the logits and the labels; a deploy net builds for ruche eval "
      << "--weights, ruche export --net and ruche time";
  net_->init_params(solver_.random_seed());
  if (!run_.init_weights.empty()) {
    const LoadReport r = load_weights(*net_, run_.init_weights, run_.init_partial);
    std::printf("loaded %d tensors from %s", r.loaded, run_.init_weights.c_str());
    for (const auto& m : r.missing) std::printf("\n  missing (kept initialised): %s", m.c_str());
    for (const auto& u : r.unexpected) std::printf("\n  unexpected (ignored): %s", u.c_str());
    for (const auto& m : r.mismatched) {
      std::printf("\n  shape mismatch (kept initialised): %s", m.c_str());
    }
    std::printf("\n");
  }
  // The other ranks: the same net and solver, rank 0's weights.
  dp_ = std::make_unique<DataParallel>(comm_, *net_, run_.parallel);
  dp_->start(to_prototxt(net_param_) + to_prototxt(solver_) + data_.kind +
             std::to_string(data_.train_size));
}

// What was used (the solver as given: --lr-scaling applies anew on resume), and the logs.
void Trainer::write_run_directory() {
  if (lead_) {
    write_file(out_ / "net.prototxt", to_prototxt(net_param_));
    write_file(out_ / "solver.prototxt", to_prototxt(run_.solver));
    std::string labels;
    for (const auto& name : data_.class_names) labels += name + "\n";
    write_file(out_ / "labels.txt", labels);
    write_preprocess(out_.string(), data_.preprocess, run_.preprocess.record_dir);
    metrics_.open((out_ / "metrics.jsonl").string());
  }
  if (lead_ && run_.tensorboard) tb_.open(out_.string());  // RUN/events.out.tfevents.*

  std::printf("%s", net_->summary().c_str());
  std::printf("data: %s, %lld train / %lld val / %lld test samples, %d classes\n",
              data_.kind.c_str(), static_cast<long long>(data_.train_size),
              static_cast<long long>(data_.val_size), static_cast<long long>(data_.test_size),
              data_.classes);
  std::printf("preprocess: %s (%s)\n", describe_preprocess(data_.preprocess).c_str(),
              run_.preprocess.record ? run_.preprocess.record_path().c_str() : "--normalize");
  if (!run_.threads_source.empty()) {
    std::printf("threads: %d per rank (%s)\n", run_.threads, run_.threads_source.c_str());
  }
  if (task_ == Task::regression) {
    std::printf(
        "task: %s (%s%s); the target is the data's float y %s%s\n", task_name(task_),
        loss_type(net_param_).c_str(),
        is_multilabel(task_, net_param_) ? ", multi-label: 0/1 per element" : "",
        data_.target_shape.str().c_str(),
        solver_.augment() && data_.sample_shape.ndim() == 3 && data_.target_shape.ndim() >= 2 &&
                data_.target_shape[data_.target_shape.ndim() - 1] == data_.sample_shape[2] &&
                data_.target_shape[data_.target_shape.ndim() - 2] == data_.sample_shape[1]
            ? ", cropped and flipped with the input"
            : "");
  } else if (task_ != Task::classification) {
    std::printf(
        "task: %s (%s); the target is the input after augmentation, before %s"
        "normalisation\n",
        task_name(task_), loss_type(net_param_).c_str(),
        solver_.noise().empty() ? "" : ("--noise " + solver_.noise() + " and ").c_str());
  }
}

// Steps per epoch, the run's length and the optimizer (under --zero 1, over this rank's range).
void Trainer::plan_steps() {
  steps_per_epoch_ = train_loader_->steps_per_epoch() / solver_.iter_size();
  RUCHE_REQUIRE(steps_per_epoch_ > 0)
      << "iter_size " << solver_.iter_size() << " exceeds the batches in an epoch";
  total_steps_ =
      solver_.max_iter() > 0
          ? solver_.max_iter()
          : static_cast<std::int64_t>(std::max(solver_.max_epochs(), 1)) * steps_per_epoch_;
  epochs_ = static_cast<int>((total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_);
  check_lr_schedule(solver_, steps_per_epoch_, total_steps_);
  optimizer_ =
      make_optimizer(solver_, net_->param_table(), net_->num_trainable(), net_->params().device(),
                     dp_->update_range().begin, dp_->update_range().end);
}

// Where to resume from, and how to save. --ema: the average starts as the weights every rank now
// holds, and is checkpointed with them.
void Trainer::open_checkpoints() {
  if (solver_.ema_decay() != 0) ema_.emplace(*net_, solver_.ema_decay());
  StateLayout layout = training_state_layout(*net_, *optimizer_);
  if (ema_) ema_->add_to(layout);
  CheckpointMeta meta;
  meta.world_size = ranks_;
  meta.threads = ops::num_threads();
  meta.net = to_prototxt(net_param_);
  meta.solver = to_prototxt(run_.solver);
  meta.net_hash = state_hash(layout);
  meta.preprocess = preprocess_json(data_.preprocess);
  checkpoints_ = std::make_unique<Checkpointer>(run_.checkpoint, run_.out_dir, *dp_,
                                                std::move(layout), std::move(meta), fault_);
  at_ = checkpoints_->resume(*optimizer_);  // the beginning, or the checkpoint --resume names
  // Resumed at another global batch (an elastic restart on fewer or more ranks), the steps left
  // are counted at this one: the rest of the resumed epoch, then whole epochs. A run of
  // --max-steps still ends at that step; a run of epochs still ends after its last epoch. On the
  // same global batch both are what plan_steps found.
  if (at_.step > 0 && static_cast<int>(at_.epoch) < epochs_ && at_.step < total_steps_) {
    const std::int64_t per_step =
        static_cast<std::int64_t>(solver_.batch_size()) * ranks_ * solver_.iter_size();
    const std::int64_t left_in_epoch = steps_per_epoch_ - at_.samples_in_epoch / per_step;
    if (solver_.max_iter() > 0) {
      const std::int64_t after = total_steps_ - at_.step - left_in_epoch;
      const std::int64_t more = after > 0 ? (after + steps_per_epoch_ - 1) / steps_per_epoch_ : 0;
      epochs_ = std::max(epochs_, static_cast<int>(at_.epoch) + 1 + static_cast<int>(more));
    } else {
      total_steps_ =
          at_.step + left_in_epoch +
          static_cast<std::int64_t>(epochs_ - static_cast<int>(at_.epoch) - 1) * steps_per_epoch_;
    }
  }
  std::printf(
      "solver: %s lr %g (%s%s), batch %d x %d ranks x %d accumulated = %d, %lld steps "
      "(%d epochs)\n",
      solver_.type().c_str(), solver_.base_lr(), solver_.lr_policy().c_str(),
      solver_.lr_scaling() == "linear" ? ", scaled linearly" : "", solver_.batch_size(), ranks_,
      solver_.iter_size(), solver_.batch_size() * ranks_ * solver_.iter_size(),
      static_cast<long long>(total_steps_), epochs_);
}

// The loop's state, restored from `at_`: best-so-far, loss scale, step counters, the clock.
void Trainer::prepare_loop() {
  const bool classes = task_ == Task::classification;
  readout_.emplace(*net_, task_, loss_type(net_param_) == "SigmoidCrossEntropyLoss",
                   solver_.iter_size(), classes ? &net_probabilities(*net_) : nullptr,
                   classes ? net_ignored_label(*net_) : std::nullopt);
  RUCHE_REQUIRE(task_ == Task::classification || solver_.target_accuracy() == 0)
      << "--target-accuracy: a " << task_name(task_) << " run has no accuracy";
  best_.higher_is_better = monitor_ != "val_loss";
  best_.min_delta = solver_.min_delta();
  RUCHE_REQUIRE(monitor_ == "val_acc" || monitor_ == "val_loss")
      << "monitor must be val_acc or val_loss, got '" << monitor_ << "'";
  RUCHE_REQUIRE(solver_.on_nan() == "stop" || solver_.on_nan() == "skip")
      << "on_nan must be stop or skip, got '" << solver_.on_nan() << "'";
  ctx_.seed = solver_.random_seed();
  ctx_.sync_bn = dp_->sync_bn();
  signals_.emplace();
  if (run_.timeline) start_timeline();
  // fp16: dynamic loss scaling; a step whose scaled gradients overflow is skipped and counted,
  // not a divergence (bf16 has fp32's range and needs none).
  if (run_.gpu_math.precision == ops::Precision::fp16) {
    scaler_.emplace();
    if (at_.loss_scale > 0) scaler_->restore(at_.loss_scale, at_.loss_scale_growth_tracker, 0);
  }
  step_ = at_.step;
  skipped_ = at_.skipped_steps;
  micro_ = static_cast<std::uint32_t>(at_.micro_batches);
  best_.best = at_.best;
  best_.best_epoch = at_.best_epoch;
  best_.epochs_without_gain = at_.epochs_without_gain;
  started_ = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(at_.elapsed_seconds));
  // The position in an epoch is in samples of the global batch, whatever the world size was:
  // resumed with another one, it rounds down to a whole step of this one.
  samples_per_step_ =
      static_cast<std::int64_t>(solver_.batch_size()) * ranks_ * solver_.iter_size();
  first_step_in_epoch_ = at_.samples_in_epoch / samples_per_step_;
  if (at_.samples_in_epoch % samples_per_step_ != 0) {
    std::printf(
        "resuming at sample %lld of the epoch (the checkpoint's %lld, rounded down to a "
        "whole step of %lld samples)\n",
        static_cast<long long>(first_step_in_epoch_) * samples_per_step_,
        static_cast<long long>(at_.samples_in_epoch), static_cast<long long>(samples_per_step_));
  }
}

// --timeline: every layer's forward and backward, the gradient wait and the optimizer.
void Trainer::start_timeline() {
  timeline_ = std::make_unique<Timeline>();
  for (const auto& layer : net_->layers()) {
    forward_names_.push_back("forward " + layer->name());
    backward_names_.push_back("backward " + layer->name());
  }
  net_->set_layer_timer(
      [this](std::size_t li, bool backward, Clock::time_point start, Clock::time_point end) {
        timeline_->add(backward ? &backward_names_[li] : &forward_names_[li],
                       backward ? "backward" : "forward", Timeline::compute, start, end);
      });
  dp_->barrier();  // every rank's origin at the same moment
  timeline_->set_origin(Clock::now());
  dp_->set_timeline(timeline_.get());
}

// Where training is after `steps_done` steps of `epoch`: what a checkpoint saves.
void Trainer::finish_run() {
  if (skipped_) {
    std::printf("skipped %lld steps with non-finite values%s\n", static_cast<long long>(skipped_),
                scaler_ ? " (fp16 gradients that overflowed the dynamic loss scale)" : "");
  }
  if (scaler_) std::printf("fp16 loss scale now %g\n", static_cast<double>(scaler_->scale()));
  if (timeline_) {
    net_->set_layer_timer(nullptr);
    dp_->set_timeline(nullptr);
    std::vector<std::string> events = dp_->gather_text(timeline_->events_json(rank_));
    if (lead_) {
      write_file(out_ / "timeline.json", timeline_file(events, timeline_->dropped()));
      std::printf("timeline of %d rank%s in %s (chrome://tracing or ui.perfetto.dev)\n", ranks_,
                  ranks_ > 1 ? "s" : "", (out_ / "timeline.json").string().c_str());
    }
  }
  if (lead_) save_weights(*net_, (out_ / "model.npz").string());
  if (ema_) {
    ema_->swap();
    if (lead_) save_weights(*net_, (out_ / "ema.npz").string());
    ema_->swap();
  }
  std::printf("trained %lld steps in %s; weights in %s\n", static_cast<long long>(step_),
              human_duration(seconds_since(started_)).c_str(),
              (out_ / "model.npz").string().c_str());
}

int Trainer::stopped_by_signal() const {
  const bool checkpoint = stop_request_ == StopRequest::checkpoint_and_stop;
  std::printf("stopped by a %s signal after step %lld%s\n",
              checkpoint ? "SIGUSR1/SIGTERM (checkpoint and stop)" : "SIGUSR2/SIGINT (interrupt)",
              static_cast<long long>(step_),
              checkpoints_->enabled() ? "; resume with --resume auto" : " (checkpoints are off)");
  return checkpoint ? kExitCheckpointed : kExitInterrupted;
}

// The test split, once, for confirmation (on the best validation weights under early stopping).
void Trainer::test_once() {
  if (!data_.splits.test) return;
  if (solver_.patience() > 0 && best_.best_epoch > 0) {
    // Rank 0 wrote best.npz (other nodes may not see it): it loads, the others receive.
    if (lead_) load_weights(*net_, (out_ / "best.npz").string(), false);
    dp_->broadcast_state();
    std::printf("test on the best validation weights (epoch %d)\n", best_.best_epoch);
  }
  if (task_ != Task::classification) {
    const RegressionEvaluation test =
        evaluate_reconstruction(*net_, data_.splits.test, "test", data_.norm, dp_.get(), task_,
                                is_multilabel(task_, net_param_));
    if (lead_) {
      write_regression_report((out_ / "eval-test.json").string(), test, nullptr,
                              {{"step", static_cast<double>(step_)}});
    }
    MetricsRecord record("test");
    record.add("step", step_)
        .add("loss", test.loss)
        .add("mse", test.tally.mse())
        .add("mae", test.tally.mae());
    if (test.psnr) record.add("psnr", test.tally.psnr());
    if (test.multilabel) record.add("acc", test.tally.accuracy());
    metrics_.write(record);
    tb_.add_scalar("test/loss", test.loss, step_);
    tb_.add_scalar("test/mse", test.tally.mse(), step_);
    if (test.psnr) tb_.add_scalar("test/psnr", test.tally.psnr(), step_);
    tb_.flush();
    std::printf("\n%s", render_regression_report(test, nullptr).c_str());
    return;
  }
  SplitEvaluation test = evaluate_split(*net_, data_.splits.test, "test", data_.norm, dp_.get());
  EvalReport& report = test.report;
  report.class_names = data_.class_names;
  report.extra.emplace_back("step", static_cast<double>(step_));
  if (lead_) write_eval_report((out_ / "eval-test.json").string(), report);
  metrics_.write(MetricsRecord("test")
                     .add("step", step_)
                     .add("loss", test.loss)
                     .add("acc", report.result.accuracy));
  tb_.add_scalar("test/loss", test.loss, step_);
  tb_.add_scalar("test/acc", report.result.accuracy, step_);
  tb_.flush();
  std::printf("\n%s", render_eval_report(report).c_str());
}

}  // namespace trainer_detail

int train(const TrainRun& run, Communicator* comm) {
  return trainer_detail::Trainer(run, comm).run();
}

}  // namespace ruche
