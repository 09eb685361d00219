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
#include "engine/train/reconstruction_grid.h"
#include "engine/train/tensorboard_log.h"
#include "engine/train/task.h"
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

// printf of one number.
std::string one_value(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
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

// Loss, top-1 hits (classification) or error sums (regression) and samples summed over some
// steps (a progress interval, an epoch).
struct Tally {
  double loss = 0, hits = 0;  // hits: multi-label, a sum of per-sample fractions
  std::int64_t seen = 0;
  RegressionTally errors;
  std::array<double, StepVotes::max_loss_terms> terms{};  // each loss layer's sum (several)
  void add(const StepVotes& v) {
    loss += v[StepVotes::loss_sum];
    for (std::size_t i = 0; i < terms.size(); ++i) terms[i] += v[StepVotes::loss_terms + i];
    hits += v[StepVotes::hits];
    seen += static_cast<std::int64_t>(v[StepVotes::samples]);
    errors.squared += v[StepVotes::squared_error];
    errors.absolute += v[StepVotes::absolute_error];
    errors.samples += static_cast<std::int64_t>(v[StepVotes::samples]);
  }
  double mean_loss() const { return seen ? loss / static_cast<double>(seen) : 0; }
  double accuracy() const {
    return seen ? hits / static_cast<double>(seen) : 0;
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

namespace {

// What a step ended as: taken by the optimizer, skipped (fp16 overflow, --on-nan skip), or the
// run diverged.
enum class StepEnd { taken, skipped, diverged };
// What an epoch's steps ended as: all done, a stop signal, or a divergence.
enum class EpochEnd { done, stopped, diverged };

// One training run of this rank: set-up, then epochs of steps, each epoch ending with validation
// and a checkpoint, then the run's end (final weights, the test split once). Every rank runs the
// same sequence; the decisions come from values that are identical on every rank.
class Trainer {
 public:
  Trainer(const TrainRun& run, Communicator* comm);
  int run();

 private:
  // ---- set-up, in this order ----
  void check_solver_and_device();
  void open_data();
  void build_net();
  void write_run_directory();
  void plan_steps();
  void open_checkpoints();
  void prepare_loop();
  void start_timeline();
  // ---- the loop ----
  EpochEnd train_epoch(int epoch);
  StepEnd train_step(int epoch, float lr, StepVotes& votes);
  StepVotes forward_backward();
  void report_progress(int epoch, float lr);
  TrainingPosition position(std::uint32_t epoch, std::int64_t steps_done) const;
  // ---- end of an epoch ----
  bool weights_finite();
  bool validate(int epoch);  // returns whether to stop (early stopping, target accuracy)
  // One validation pass of each kind; they return the monitored value (val_acc or val_loss) and
  // set `stop` when the target accuracy is reached.
  double validate_classes(int epoch, bool& stop);
  double validate_regression(int epoch);
  // ---- end of the run ----
  void finish_run();
  int stopped_by_signal() const;
  void test_once();

  const TrainRun& run_;
  Communicator* comm_;
  proto::SolverParameter solver_;
  int rank_ = 0, ranks_ = 1;
  bool lead_ = true;  // writes the run directory; the others only train
  std::filesystem::path out_;
  Fault fault_;

  TrainData data_;
  BatchSource* train_loader_ = nullptr;
  BatchSource* val_loader_ = nullptr;
  proto::NetParameter net_param_;
  Task task_ = Task::classification;
  std::string monitor_;  // val_acc or val_loss
  std::unique_ptr<Net> net_;
  std::unique_ptr<DataParallel> dp_;
  MetricsLog metrics_;
  TensorBoardWriter tb_;

  std::int64_t steps_per_epoch_ = 0, total_steps_ = 0;
  int epochs_ = 0;
  std::unique_ptr<Optimizer> optimizer_;
  std::optional<WeightAverage> ema_;
  std::unique_ptr<Checkpointer> checkpoints_;
  TrainingPosition at_;  // where training started (a resumed checkpoint's position)

  const Tensor* probs_ = nullptr;
  BestTracker best_;
  StepContext ctx_;
  std::optional<StopSignals> signals_;
  std::unique_ptr<Timeline> timeline_;
  std::vector<std::string> forward_names_, backward_names_;  // outlive the events naming them
  std::optional<LossScaler> scaler_;
  StopRequest stop_request_ = StopRequest::none;
  std::int64_t step_ = 0, skipped_ = 0;
  std::uint32_t micro_ = 0;
  Clock::time_point started_;
  std::int64_t samples_per_step_ = 0, first_step_in_epoch_ = 0;
  std::int64_t steps_done_in_epoch_ = 0;  // of the epoch in progress (a stopping step included)
  // The steps of the progress interval and of the epoch in progress.
  Tally interval_, whole_epoch_;
  Clock::time_point interval_start_;
};

Trainer::Trainer(const TrainRun& run, Communicator* comm)
    : run_(run),
      comm_(comm),
      solver_(effective_solver(run.solver, comm ? comm->size() : 1)),
      rank_(comm ? comm->rank() : 0),
      ranks_(comm ? comm->size() : 1),
      lead_(rank_ == 0),
      out_(run.out_dir) {}

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
    dp_->check_in_sync(step_);
    if (!weights_finite()) return kExitDiverged;
    stop = validate(epoch);
    now = position(static_cast<std::uint32_t>(epoch), steps_done_in_epoch_);
    if (!stop && step_ < total_steps_) checkpoints_->save_async(now);  // every epoch
  }
  if (!checkpoints_->save_now(now)) {  // the end of the run (or of its early stop)
    if (lead_) {
      std::fprintf(stderr, "ruche: error: the final checkpoint could not be written (the disk is "
                           "full); exit %d\n", kExitSaveFailed);
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
      << "solver: unknown optimizer type '" << solver_.type() << "' (valid: " << join(types)
      << ")";
  const auto policies = lr_policies();
  RUCHE_REQUIRE(std::find(policies.begin(), policies.end(), solver_.lr_policy()) !=
                policies.end())
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
  data_ = open_train_data(run_.data, solver_, data_opts);
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
    std::printf("task: %s (%s%s); the target is the data's float y %s%s\n", task_name(task_),
                loss_type(net_param_).c_str(),
                is_multilabel(task_, net_param_) ? ", multi-label: 0/1 per element" : "",
                data_.target_shape.str().c_str(),
                solver_.augment() && data_.sample_shape.ndim() == 3 &&
                        data_.target_shape.ndim() >= 2 &&
                        data_.target_shape[data_.target_shape.ndim() - 1] ==
                            data_.sample_shape[2] &&
                        data_.target_shape[data_.target_shape.ndim() - 2] == data_.sample_shape[1]
                    ? ", cropped and flipped with the input"
                    : "");
  } else if (task_ != Task::classification) {
    std::printf("task: %s (%s); the target is the input after augmentation, before %s"
                "normalisation\n",
                task_name(task_), loss_type(net_param_).c_str(),
                solver_.noise().empty() ? "" : ("--noise " + solver_.noise() + " and ").c_str());
  }
}

// Steps per epoch, the run's length and the optimizer (under --zero 1, over this rank's range).
void Trainer::plan_steps() {
  steps_per_epoch_ = train_loader_->steps_per_epoch() / solver_.iter_size();
  RUCHE_REQUIRE(steps_per_epoch_ > 0) << "iter_size " << solver_.iter_size()
                                      << " exceeds the batches in an epoch";
  total_steps_ = solver_.max_iter() > 0
                     ? solver_.max_iter()
                     : static_cast<std::int64_t>(std::max(solver_.max_epochs(), 1)) *
                           steps_per_epoch_;
  epochs_ = static_cast<int>((total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_);
  check_lr_schedule(solver_, steps_per_epoch_, total_steps_);
  optimizer_ = make_optimizer(solver_, net_->param_table(), net_->num_trainable(),
                              net_->params().device(), dp_->update_range().begin,
                              dp_->update_range().end);
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
      total_steps_ = at_.step + left_in_epoch +
                     static_cast<std::int64_t>(epochs_ - static_cast<int>(at_.epoch) - 1) *
                         steps_per_epoch_;
    }
  }
  std::printf("solver: %s lr %g (%s%s), batch %d x %d ranks x %d accumulated = %d, %lld steps "
              "(%d epochs)\n",
              solver_.type().c_str(), solver_.base_lr(), solver_.lr_policy().c_str(),
              solver_.lr_scaling() == "linear" ? ", scaled linearly" : "", solver_.batch_size(),
              ranks_, solver_.iter_size(), solver_.batch_size() * ranks_ * solver_.iter_size(),
              static_cast<long long>(total_steps_), epochs_);
}

// The loop's state, restored from `at_`: best-so-far, loss scale, step counters, the clock.
void Trainer::prepare_loop() {
  if (task_ == Task::classification) probs_ = &net_probabilities(*net_);
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
    std::printf("resuming at sample %lld of the epoch (the checkpoint's %lld, rounded down to a "
                "whole step of %lld samples)\n",
                static_cast<long long>(first_step_in_epoch_ * samples_per_step_),
                static_cast<long long>(at_.samples_in_epoch),
                static_cast<long long>(samples_per_step_));
  }
}

// --timeline: every layer's forward and backward, the gradient wait and the optimizer.
void Trainer::start_timeline() {
  timeline_ = std::make_unique<Timeline>();
  for (const auto& layer : net_->layers()) {
    forward_names_.push_back("forward " + layer->name());
    backward_names_.push_back("backward " + layer->name());
  }
  net_->set_layer_timer([this](std::size_t li, bool backward, Clock::time_point start,
                               Clock::time_point end) {
    timeline_->add(backward ? &backward_names_[li] : &forward_names_[li],
                   backward ? "backward" : "forward", Timeline::compute, start, end);
  });
  dp_->barrier();  // every rank's origin at the same moment
  timeline_->set_origin(Clock::now());
  dp_->set_timeline(timeline_.get());
}

// Where training is after `steps_done` steps of `epoch`: what a checkpoint saves.
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
    train_loader_->start_epoch(static_cast<std::uint32_t>(epoch),
                               first_step * solver_.iter_size());
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
    const StepEnd end = train_step(epoch, lr, votes);
    if (end == StepEnd::diverged) return EpochEnd::diverged;
    if (end == StepEnd::taken) {
      if (tb_.is_open() && run_.tb_histograms > 0 && step_ % run_.tb_histograms == 0) {
        log_param_histograms(tb_, *net_, dp_->update_grads(), dp_->update_range(), step_);
        tb_.flush();
      }
      if (step_ % solver_.display() == 0 || step_ == total_steps_) report_progress(epoch, lr);
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
  votes = forward_backward();
  const StopRequest request = signals_->requested();
  votes[StepVotes::stop] = request == StopRequest::checkpoint_and_stop;
  votes[StepVotes::interrupt] = request == StopRequest::interrupt;
  votes[StepVotes::checkpoint_due] = checkpoints_->vote_due();
  votes[StepVotes::shard_written] = checkpoints_->vote_written();
  const auto wait_start = Clock::now();
  votes = dp_->finish_step(votes);  // every rank now holds the same sums and gradients
  if (timeline_) {
    timeline_->add("wait for gradients", "comm_wait", Timeline::compute, wait_start,
                   Clock::now());
  }
  // The mean over micro-batches, and the loss scale taken back out.
  float unscale = solver_.iter_size() > 1 ? 1.0f / static_cast<float>(solver_.iter_size()) : 1;
  if (scaler_) unscale *= scaler_->inv_scale();
  if (unscale != 1.0f) ops::scale(unscale, dp_->update_grads());
  const GradStats stats = dp_->grad_stats();
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
    metrics_.write(MetricsRecord("train").add("epoch", epoch + 1).add("step", step_)
                       .add("loss", std::nan("")).add("diverged", 1));
    return StepEnd::diverged;
  }
  interval_.add(votes);
  whole_epoch_.add(votes);
  clip_grad_norm(dp_->update_grads(), dp_->update_grads().numel(), stats,
                 solver_.clip_grad_norm());
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

// The step's iter_size micro-batches, forward and backward; the last one's gradients are reduced
// as backward produces them. Returns this rank's loss, hit and sample sums and NaN vote.
StepVotes Trainer::forward_backward() {
  StepVotes votes;
  ctx_.loss_scale = scaler_ ? scaler_->scale() : 1.0f;
  for (int k = 0; k < solver_.iter_size(); ++k) {
    const std::int64_t n = train_loader_->next(net_->input(), net_->labels());
    RUCHE_CHECK(n == solver_.batch_size()) << "the training loader returned a short batch";
    ctx_.phase = Phase::train;
    ctx_.step = micro_++;
    net_->forward(ctx_);
    const bool last = k + 1 == solver_.iter_size();
    if (last) dp_->share_buffers();
    const float loss = net_->loss().item();
    if (!std::isfinite(loss)) votes[StepVotes::nonfinite_loss] = 1;
    dp_->reduce_next_backward(last);
    net_->backward(ctx_, k > 0);
    votes[StepVotes::loss_sum] += loss * static_cast<float>(n);
    if (net_->losses().size() > 1) {  // each loss beside the weighted total
      const auto& terms = net_->losses();
      for (std::size_t i = 0; i < terms.size() && i < StepVotes::max_loss_terms; ++i) {
        votes[StepVotes::loss_terms + i] += terms[i].value.item() * static_cast<float>(n);
      }
    }
    if (task_ == Task::classification) {
      votes[StepVotes::hits] += static_cast<float>(correct_in(*probs_, net_->labels(), n));
    } else {
      RegressionTally errors;
      tally_regression(*net_, n, errors);
      votes[StepVotes::hits] += static_cast<float>(errors.hits);
      votes[StepVotes::squared_error] += static_cast<float>(errors.squared);
      votes[StepVotes::absolute_error] += static_cast<float>(errors.absolute);
    }
    votes[StepVotes::samples] += static_cast<float>(n);
  }
  return votes;
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
      p.losses.emplace_back(terms[i].name, interval_.seen ? interval_.terms[i] /
                                                                static_cast<double>(interval_.seen)
                                                          : 0.0);
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
  record.add("lr", p.lr).add("img_per_s", p.images_per_second)
      .add("time_s", seconds_since(started_)).add("saving", checkpoints_->saving() ? 1 : 0);
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

// Validation (every eval_every_epochs and at the last epoch): the kind's line, metrics.jsonl and
// TensorBoard, then best.npz and early stopping on the monitored value.
bool Trainer::validate(int epoch) {
  RUCHE_REQUIRE(solver_.eval_every_epochs() >= 1)
      << "eval_every_epochs must be >= 1, got " << solver_.eval_every_epochs();
  const bool last_epoch = epoch + 1 == epochs_ || step_ >= total_steps_;
  if (!val_loader_ || ((epoch + 1) % solver_.eval_every_epochs() != 0 && !last_epoch)) {
    return false;
  }
  bool stop = false;
  const double monitored = task_ == Task::classification ? validate_classes(epoch, stop)
                                                         : validate_regression(epoch);
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

// Accuracy, top-5, the confusion image, the target accuracy and the chance-level warning.
double Trainer::validate_classes(int epoch, bool& stop) {
  const double train_acc = whole_epoch_.accuracy();
  const int classes = data_.classes;
  EvalAccumulator acc(classes, false, data_.val_size);
  double nll_sum = evaluate(*net_, *val_loader_, acc) * static_cast<double>(acc.samples());
  dp_->reduce_evaluation(acc, nll_sum);
  const double val_loss = acc.samples() ? nll_sum / static_cast<double>(acc.samples()) : 0;
  const double val_acc = acc.samples() ? static_cast<double>(acc.top1_correct()) /
                                             static_cast<double>(acc.samples())
                                       : 0;
  const bool has_top5 = classes > 5 && acc.samples() > 0;
  const double val_top5 = has_top5 ? static_cast<double>(acc.top5_correct()) /
                                         static_cast<double>(acc.samples())
                                   : 0;
  std::printf("epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%", epoch + 1,
              epochs_, whole_epoch_.mean_loss(), 100 * train_acc, val_loss, 100 * val_acc);
  if (has_top5) std::printf(" top-5 %.2f%%", 100 * val_top5);
  std::printf("  (%s)\n", human_duration(seconds_since(started_)).c_str());
  MetricsRecord record("val");
  record.add("epoch", epoch + 1).add("step", step_).add("loss", val_loss).add("acc", val_acc);
  if (has_top5) record.add("top5", val_top5);
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
    log_confusion_image(tb_, "val", acc.confusion(), step_);
    tb_.flush();
  }
  if (solver_.target_accuracy() > 0 && val_acc >= solver_.target_accuracy()) {
    std::printf("time to accuracy: validation top-1 %.2f%% >= target %.2f%% after %d epochs "
                "in %s (%.0f s)\n",
                100 * val_acc, 100.0 * solver_.target_accuracy(), epoch + 1,
                human_duration(seconds_since(started_)).c_str(), seconds_since(started_));
    metrics_.write(MetricsRecord("target").add("epoch", epoch + 1).add("step", step_)
                       .add("acc", val_acc).add("time_to_accuracy_s", seconds_since(started_)));
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
    double loss_sum = evaluate_regression(*net_, *val_loader_, tally) *
                      static_cast<double>(tally.samples);
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
              val.mse(), val.mae(), extra.c_str(),
              human_duration(seconds_since(started_)).c_str());
  MetricsRecord record("val");
  record.add("epoch", epoch + 1).add("step", step_).add("loss", val_loss).add("mse", val.mse())
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
void Trainer::finish_run() {
  if (skipped_) {
    std::printf("skipped %lld steps with non-finite values%s\n",
                static_cast<long long>(skipped_),
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
    record.add("step", step_).add("loss", test.loss).add("mse", test.tally.mse())
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
  metrics_.write(MetricsRecord("test").add("step", step_).add("loss", test.loss)
                     .add("acc", report.result.accuracy));
  tb_.add_scalar("test/loss", test.loss, step_);
  tb_.add_scalar("test/acc", report.result.accuracy, step_);
  tb_.flush();
  std::printf("\n%s", render_eval_report(report).c_str());
}

}  // namespace

int train(const TrainRun& run, Communicator* comm) { return Trainer(run, comm).run(); }

}  // namespace ruche
