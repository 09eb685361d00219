// The Trainer's epochs and steps, the progress it reports and validation (engine/train/
// trainer_run.h).
#include "engine/train/trainer_run.h"

namespace ruche::trainer_detail {

TrainingPosition Trainer::position(std::uint32_t epoch, std::int64_t steps_done) const {
  TrainingPosition p;
  p.step = step_;
  p.epoch = epoch;
  p.samples_in_epoch = steps_done * samples_per_step_;
  p.data_position = train_loader_->stream_position();  // shards: which samples were read
  if (steps_done == steps_per_epoch_) {  // the epoch is over: the next one from its start
    p.epoch = epoch + 1;
    p.samples_in_epoch = 0;
    p.data_position.clear();
  }
  p.micro_batches = micro_;
  p.skipped_steps = skipped_;
  p.best = best_.best;
  p.best_epoch = best_.best_epoch;
  p.epochs_without_gain = best_.epochs_without_gain;
  p.elapsed_seconds = seconds_since(started_);
  if (scaler_) {
    p.loss_scale = scaler_->scale();
    p.loss_scale_growth_tracker = scaler_->growth_tracker();
  }
  return p;
}

// ---- the loop ----

// The steps of `epoch` (from the resumed position in the first one), with progress lines and
// step-driven checkpoints.
EpochEnd Trainer::train_epoch(int epoch) {
  const bool resumed_epoch = epoch == static_cast<int>(at_.epoch);
  std::int64_t first_step = resumed_epoch ? first_step_in_epoch_ : 0;
  if (resumed_epoch && !at_.data_position.empty()) {
    // Shards resume from the samples they read; what is left of the epoch (at this world size)
    // is the rest of its steps.
    train_loader_->start_from(at_.data_position);
    first_step = std::max<std::int64_t>(
        0, steps_per_epoch_ - train_loader_->steps_this_epoch() / solver_.iter_size());
  } else {
    train_loader_->start_epoch(static_cast<std::uint32_t>(epoch), first_step * solver_.iter_size());
  }
  ctx_.epoch = static_cast<std::uint32_t>(epoch);
  interval_ = Tally();
  whole_epoch_ = Tally();
  interval_start_ = Clock::now();
  std::int64_t s = first_step;
  for (; s < steps_per_epoch_ && step_ < total_steps_; ++s) {
    fault_.maybe_fail(Fault::Point::step_start, step_, rank_);
    const float lr = lr_at(solver_, step_, steps_per_epoch_, total_steps_);
    StepVotes votes;
    const std::uint64_t waits_before = cuda::host_waits();
    const StepEnd end = train_step(epoch, lr, votes);
    interval_.host_waits += cuda::host_waits() - waits_before;
    ++interval_.steps;
    if (end == StepEnd::diverged) return EpochEnd::diverged;
    if (end == StepEnd::taken) {
      if (tb_.is_open() && run_.tb_histograms > 0 && step_ % run_.tb_histograms == 0) {
        log_param_histograms(tb_, *net_, dp_->update_grads(), dp_->update_range(), step_);
        tb_.flush();
      }
      if (step_ % solver_.display() == 0 || step_ == total_steps_) report_progress(epoch, lr);
      if (validate(epoch, false)) {
        steps_done_in_epoch_ = s + 1;
        return EpochEnd::validation_stop;
      }
    }
    if (stop_request_ != StopRequest::none) {
      steps_done_in_epoch_ = s + 1;
      return EpochEnd::stopped;
    }
    if (end == StepEnd::skipped) continue;  // a skipped step starts no checkpoint
    // The epoch's last step saves after validation instead (with the best-so-far it finds).
    checkpoints_->after_step(position(static_cast<std::uint32_t>(epoch), s + 1),
                             votes[StepVotes::checkpoint_due], votes[StepVotes::shard_written],
                             s + 1 == steps_per_epoch_);
  }
  steps_done_in_epoch_ = s;
  return EpochEnd::done;
}

// One optimizer step: the micro-batches, the vote, then the decision every rank takes alike
// (stop, skip, diverge) and the update. `votes` ends summed over ranks.
StepEnd Trainer::train_step(int epoch, float lr, StepVotes& votes) {
  forward_backward();
  const auto wait_start = Clock::now();
  dp_->finish_gradients();  // every rank now holds the same gradients (a GPU: once queued)
  // The mean over micro-batches, and the loss scale taken back out.
  float unscale = solver_.iter_size() > 1 ? 1.0f / static_cast<float>(solver_.iter_size()) : 1;
  if (scaler_) unscale *= scaler_->inv_scale();
  if (unscale != 1.0f) ops::scale(unscale, dp_->update_grads());
  dp_->queue_grad_sums(readout_->grad_sums());
  ops::SumSquaresFinite grad_sums;
  votes = readout_->fetch(grad_sums);  // the step's one wait for the device
  const StopRequest request = signals_->requested();
  votes[StepVotes::stop] = request == StopRequest::checkpoint_and_stop;
  votes[StepVotes::interrupt] = request == StopRequest::interrupt;
  votes[StepVotes::checkpoint_due] = checkpoints_->vote_due();
  votes[StepVotes::shard_written] = checkpoints_->vote_written();
  votes = dp_->sum_votes(votes);  // every rank now holds the same sums
  if (timeline_) {
    timeline_->add("wait for gradients", "comm_wait", Timeline::compute, wait_start, Clock::now());
  }
  const GradStats stats = dp_->grad_stats(grad_sums);
  if (votes[StepVotes::stop] > 0) stop_request_ = StopRequest::checkpoint_and_stop;
  if (votes[StepVotes::interrupt] > 0 && stop_request_ == StopRequest::none) {
    stop_request_ = StopRequest::interrupt;
  }
  if (scaler_ && votes[StepVotes::nonfinite_loss] == 0 && !scaler_->update(stats.finite)) {
    ++skipped_;  // fp16 overflow: the scale is backed off and the step not taken
    ++step_;
    return StepEnd::skipped;
  }
  if (votes[StepVotes::nonfinite_loss] > 0 || !stats.finite) {
    if (solver_.on_nan() == "skip") {
      ++skipped_;
      ++step_;
      return StepEnd::skipped;
    }
    if (lead_) print_nan_diagnosis(*net_, step_, lr);
    checkpoints_->finish();  // a save from before the divergence is still good
    metrics_.write(MetricsRecord("train")
                       .add("epoch", epoch + 1)
                       .add("step", step_)
                       .add("loss", std::nan(""))
                       .add("diverged", 1));
    return StepEnd::diverged;
  }
  interval_.add(votes);
  whole_epoch_.add(votes);
  clip_grad_norm(dp_->update_grads(), dp_->update_grads().numel(), stats, solver_.clip_grad_norm());
  const auto optimizer_start = Clock::now();
  optimizer_->step(dp_->update_params(), dp_->update_grads(), lr);
  dp_->share_parameters();  // --zero 1: every rank's updated range to every rank
  if (ema_) ema_->update();
  if (timeline_) {
    timeline_->add("optimizer", "optimizer", Timeline::compute, optimizer_start, Clock::now());
  }
  ++step_;
  return StepEnd::taken;
}

// The step's iter_size micro-batches, forward and backward, queued; the last one's gradients are
// reduced as backward produces them. What the host needs of each goes to readout_.
void Trainer::forward_backward() {
  ctx_.loss_scale = scaler_ ? scaler_->scale() : 1.0f;
  ctx_.defer_checks = true;
  for (int k = 0; k < solver_.iter_size(); ++k) {
    const std::int64_t n = train_loader_->next(net_->input(), net_->labels());
    RUCHE_CHECK(n == solver_.batch_size()) << "the training loader returned a short batch";
    ctx_.phase = Phase::train;
    ctx_.step = micro_++;
    net_->forward(ctx_);
    const bool last = k + 1 == solver_.iter_size();
    if (last) dp_->share_buffers();
    dp_->reduce_next_backward(last);
    net_->backward(ctx_, k > 0);
    readout_->record_micro_batch(k, n);
  }
}

// Every `display` steps: the progress line, metrics.jsonl and TensorBoard, over the interval.
void Trainer::report_progress(int epoch, float lr) {
  const double elapsed = seconds_since(interval_start_);
  Progress p;
  p.epoch = epoch + 1;
  p.epochs = epochs_;
  p.step = step_;
  p.steps = total_steps_;
  p.loss = interval_.mean_loss();
  p.accuracy = interval_.accuracy();
  p.regression = task_ != Task::classification;
  p.mse = interval_.errors.mse();
  p.psnr = task_ == Task::reconstruction ? interval_.errors.psnr() : NAN;
  p.multilabel = is_multilabel(task_, net_param_);
  p.lr = lr;
  p.images_per_second = static_cast<double>(interval_.seen) / elapsed;
  p.eta_seconds = seconds_since(started_) / static_cast<double>(step_) *
                  static_cast<double>(total_steps_ - step_);
  p.checkpoint_every = checkpoints_->cadence().every;
  p.checkpoint_cost_percent = checkpoints_->cadence().cost_percent;
  if (net_->losses().size() > 1) {  // each loss layer's mean (unweighted), by layer name
    const auto& terms = net_->losses();
    for (std::size_t i = 0; i < terms.size() && i < StepVotes::max_loss_terms; ++i) {
      p.losses.emplace_back(
          terms[i].name,
          interval_.seen ? interval_.terms[i] / static_cast<double>(interval_.seen) : 0.0);
    }
  }
  std::printf("%s\n", progress_line(p).c_str());
  std::fflush(stdout);
  MetricsRecord record("train");
  record.add("epoch", epoch + 1).add("step", step_).add("loss", p.loss);
  for (const auto& [name, value] : p.losses) record.add("loss/" + name, value);
  if (p.regression) {
    record.add("mse", p.mse).add("mae", interval_.errors.mae());
    if (task_ == Task::reconstruction) record.add("psnr", p.psnr);
    if (p.multilabel) record.add("acc", p.accuracy);
  } else {
    record.add("acc", p.accuracy);
  }
  record.add("lr", p.lr)
      .add("img_per_s", p.images_per_second)
      .add("time_s", seconds_since(started_))
      .add("saving", checkpoints_->saving() ? 1 : 0);
  if (p.checkpoint_every > 0) {  // --checkpoint-every-steps auto
    record.add("ckpt_every", p.checkpoint_every)
        .add("ckpt_cost_pct", p.checkpoint_cost_percent)
        .add("ckpt_step_s", checkpoints_->cadence().step_seconds)
        .add("ckpt_save_s", checkpoints_->cadence().save_seconds);
  }
  if (scaler_) record.add("loss_scale", static_cast<double>(scaler_->scale()));
  if (run_.device.is_cuda()) {  // peak device memory held by tensors so far
    const auto peak = cuda::allocator_stats(run_.device.index).peak_allocated_bytes;
    record.add("gpu_peak_mib", static_cast<double>(peak) / (1 << 20));
  }
  // The host's waits for the GPU per step, the optimizer and the step's votes included (0 on a
  // CPU): each is a stall in which the GPU may run dry.
  record.add("syncs_per_step", interval_.steps ? static_cast<double>(interval_.host_waits) /
                                                     static_cast<double>(interval_.steps)
                                               : 0.0);
  metrics_.write(record);
  if (tb_.is_open()) {
    tb_.add_scalar("train/loss", p.loss, step_);
    for (const auto& [name, value] : p.losses) tb_.add_scalar("train/loss/" + name, value, step_);
    if (p.regression) {
      tb_.add_scalar("train/mse", p.mse, step_);
      if (task_ == Task::reconstruction) tb_.add_scalar("train/psnr", p.psnr, step_);
      if (p.multilabel) tb_.add_scalar("train/acc", p.accuracy, step_);
    } else {
      tb_.add_scalar("train/acc", p.accuracy, step_);
    }
    tb_.add_scalar("train/lr", p.lr, step_);
    tb_.add_scalar("train/img_per_s", p.images_per_second, step_);
    if (scaler_) tb_.add_scalar("train/loss_scale", scaler_->scale(), step_);
    log_param_norms(tb_, *net_, dp_->update_grads(), dp_->update_range(), step_);
    tb_.flush();
  }
  interval_ = Tally();
  interval_start_ = Clock::now();
}

// ---- end of an epoch ----

// Finite updates can still overflow the weights (--on-nan skip cannot undo those).
bool Trainer::weights_finite() {
  if (grad_stats(net_->params(), net_->params().numel()).finite) return true;
  if (lead_) {
    print_nan_diagnosis(*net_, step_, lr_at(solver_, step_, steps_per_epoch_, total_steps_));
  }
  return false;
}

// Validation (every eval_every_epochs or eval_every_steps, and at the end): the kind's line,
// metrics.jsonl and TensorBoard, then best.npz and early stopping on the monitored value.
bool Trainer::validate(int epoch, bool epoch_end) {
  RUCHE_REQUIRE(solver_.eval_every_epochs() >= 1)
      << "eval_every_epochs must be >= 1, got " << solver_.eval_every_epochs();
  RUCHE_REQUIRE(solver_.eval_every_steps() >= 0)
      << "eval_every_steps must be >= 0, got " << solver_.eval_every_steps();
  const bool last_epoch = epoch + 1 == epochs_ || step_ >= total_steps_;
  const std::int64_t every_steps = solver_.eval_every_steps();
  bool due = epoch_end && ((epoch + 1) % solver_.eval_every_epochs() == 0 || last_epoch);
  if (every_steps > 0) {  // an epoch's end only validates a last step the cadence missed
    due = epoch_end ? last_epoch && step_ % every_steps != 0 : step_ % every_steps == 0;
  }
  if (!val_loader_ || !due) return false;
  bool stop = false;
  const double monitored =
      task_ == Task::classification ? validate_classes(epoch, stop) : validate_regression(epoch);
  if (best_.update(monitored, epoch + 1) && lead_) {
    save_weights(*net_, (out_ / "best.npz").string());
  }
  if (solver_.patience() > 0 && best_.epochs_without_gain >= solver_.patience()) {
    std::printf("early stopping: %s has not improved for %d epochs (best %.4f at epoch %d)\n",
                monitor_.c_str(), solver_.patience(), best_.best, best_.best_epoch);
    stop = true;
  }
  return stop;
}

// Accuracy, top-5 and the net's eval_top_k, the confusion image, the target accuracy and the
// chance-level warning.
double Trainer::validate_classes(int epoch, bool& stop) {
  const double train_acc = whole_epoch_.accuracy();
  const int classes = data_.classes;
  EvalAccumulator acc(classes, false, data_.val_size);
  double nll_sum = evaluate(*net_, *val_loader_, acc) * static_cast<double>(acc.samples());
  dp_->reduce_evaluation(acc, nll_sum);
  const double val_loss = acc.samples() ? nll_sum / static_cast<double>(acc.samples()) : 0;
  const double val_acc =
      acc.samples() ? static_cast<double>(acc.top1_correct()) / static_cast<double>(acc.samples())
                    : 0;
  const auto top_k = [&](int k) {
    return acc.samples()
               ? static_cast<double>(acc.top_k_correct(k)) / static_cast<double>(acc.samples())
               : 0.0;
  };
  const bool has_top5 = classes > 5 && acc.samples() > 0;
  const double val_top5 = has_top5 ? top_k(5) : 0;
  const auto& asked_k = net_->param().eval_top_k();
  std::printf("epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%", epoch + 1,
              epochs_, whole_epoch_.mean_loss(), 100 * train_acc, val_loss, 100 * val_acc);
  if (has_top5) std::printf(" top-5 %.2f%%", 100 * val_top5);
  for (int k : asked_k) std::printf(" top-%d %.2f%%", k, 100 * top_k(k));
  std::printf("  (%s)\n", human_duration(seconds_since(started_)).c_str());
  MetricsRecord record("val");
  record.add("epoch", epoch + 1).add("step", step_).add("loss", val_loss).add("acc", val_acc);
  if (has_top5) record.add("top5", val_top5);
  for (int k : asked_k) record.add("top" + std::to_string(k), top_k(k));
  if (ema_) {  // the averaged weights on the same split, then the raw ones back
    ema_->swap();
    EvalAccumulator ema_acc(classes, false, data_.val_size);
    double ema_nll =
        evaluate(*net_, *val_loader_, ema_acc) * static_cast<double>(ema_acc.samples());
    dp_->reduce_evaluation(ema_acc, ema_nll);
    ema_->swap();
    const double n = static_cast<double>(std::max<std::int64_t>(ema_acc.samples(), 1));
    record.add("ema_loss", ema_nll / n)
        .add("ema_acc", static_cast<double>(ema_acc.top1_correct()) / n);
    std::printf("epoch %d/%d  ema (decay %g) val loss %.4f acc %.2f%%\n", epoch + 1, epochs_,
                static_cast<double>(ema_->decay()), ema_nll / n,
                100.0 * static_cast<double>(ema_acc.top1_correct()) / n);
  }
  metrics_.write(record.add("time_s", seconds_since(started_)));
  if (tb_.is_open()) {
    tb_.add_scalar("val/loss", val_loss, step_);
    tb_.add_scalar("val/acc", val_acc, step_);
    if (has_top5) tb_.add_scalar("val/top5", val_top5, step_);
    for (int k : asked_k) tb_.add_scalar("val/top" + std::to_string(k), top_k(k), step_);
    log_confusion_image(tb_, "val", acc.confusion(), step_);
    tb_.flush();
  }
  if (solver_.target_accuracy() > 0 && val_acc >= solver_.target_accuracy()) {
    std::printf(
        "time to accuracy: validation top-1 %.2f%% >= target %.2f%% after %d epochs "
        "in %s (%.0f s)\n",
        100 * val_acc, 100.0 * solver_.target_accuracy(), epoch + 1,
        human_duration(seconds_since(started_)).c_str(), seconds_since(started_));
    metrics_.write(MetricsRecord("target")
                       .add("epoch", epoch + 1)
                       .add("step", step_)
                       .add("acc", val_acc)
                       .add("time_to_accuracy_s", seconds_since(started_)));
    stop = true;
  }
  const double chance = 1.0 / classes;
  if (lead_ && epoch + 1 == solver_.chance_warning_epochs() && train_acc < 1.5 * chance &&
      val_acc < 1.5 * chance) {
    warn_chance_level(classes, train_acc, val_acc);
  }
  return best_.higher_is_better ? val_acc : val_loss;
}

// MSE, MAE and PSNR (peak 1) of the prediction against the target, raw weights then EMA's.
double Trainer::validate_regression(int epoch) {
  auto run_validation = [&](RegressionTally& tally) {
    double loss_sum =
        evaluate_regression(*net_, *val_loader_, tally) * static_cast<double>(tally.samples);
    dp_->reduce_evaluation(tally, loss_sum);
    return tally.samples ? loss_sum / static_cast<double>(tally.samples) : 0.0;
  };
  RegressionTally val;
  const double val_loss = run_validation(val);
  // PSNR (peak 1) is for images in [0, 1]: reconstruction only; multi-label: accuracy at 0.5.
  const bool psnr = task_ == Task::reconstruction;
  const bool multilabel = is_multilabel(task_, net_param_);
  std::string extra = psnr ? one_value(" psnr %.2f dB", val.psnr()) : "";
  if (multilabel) extra += one_value(" acc@0.5 %.2f%%", 100 * val.accuracy());
  std::printf("epoch %d/%d  train loss %.4f mse %.4g  val loss %.4f mse %.4g mae %.4g%s  (%s)\n",
              epoch + 1, epochs_, whole_epoch_.mean_loss(), whole_epoch_.errors.mse(), val_loss,
              val.mse(), val.mae(), extra.c_str(), human_duration(seconds_since(started_)).c_str());
  MetricsRecord record("val");
  record.add("epoch", epoch + 1)
      .add("step", step_)
      .add("loss", val_loss)
      .add("mse", val.mse())
      .add("mae", val.mae());
  if (psnr) record.add("psnr", val.psnr());
  if (multilabel) record.add("acc", val.accuracy());
  if (ema_) {  // the averaged weights on the same split, then the raw ones back
    ema_->swap();
    RegressionTally averaged;
    const double ema_loss = run_validation(averaged);
    ema_->swap();
    record.add("ema_loss", ema_loss).add("ema_mse", averaged.mse());
    std::printf("epoch %d/%d  ema (decay %g) val loss %.4f mse %.4g%s\n", epoch + 1, epochs_,
                static_cast<double>(ema_->decay()), ema_loss, averaged.mse(),
                psnr ? one_value(" psnr %.2f dB", averaged.psnr()).c_str() : "");
  }
  metrics_.write(record.add("time_s", seconds_since(started_)));
  if (tb_.is_open()) {
    tb_.add_scalar("val/loss", val_loss, step_);
    tb_.add_scalar("val/mse", val.mse(), step_);
    tb_.add_scalar("val/mae", val.mae(), step_);
    if (psnr) tb_.add_scalar("val/psnr", val.psnr(), step_);
    if (multilabel) tb_.add_scalar("val/acc", val.accuracy(), step_);
  }
  // The first validation samples beside their reconstructions and errors: TensorBoard's
  // val/reconstructions and RUN/reconstructions.npz (`ruche plot` draws it). Rank 0's share only.
  if (lead_ && task_ == Task::reconstruction) {
    const ReconstructionSamples samples = take_reconstructions(*net_, *val_loader_);
    save_reconstructions((out_ / "reconstructions.npz").string(), samples, step_);
    if (tb_.is_open()) {
      const PngImage grid = reconstruction_grid(samples);
      tb_.add_image("val/reconstructions", grid.png, grid.width, grid.height, 3, step_);
    }
  }
  if (tb_.is_open()) tb_.flush();
  return val_loss;
}

// ---- end of the run ----

// The skip and loss-scale summary, the timeline, model.npz and ema.npz.
}  // namespace ruche::trainer_detail
