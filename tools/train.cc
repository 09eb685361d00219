// ruche train: flags to a TrainRun. Every training hyperparameter is a solver field and a flag;
// the flag wins over --solver's value, and `ruche train --help` shows each pair.
#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <vector>

#include "comm/heartbeat.h"
#include "comm/mpi/mpi_communicator.h"
#include "comm/routed_communicator.h"
#include "comm/world.h"
#if RUCHE_WITH_CUDA
#include "comm/nccl/nccl_communicator.h"
#endif
#include "engine/models/models.h"
#include "engine/proto/text_format.h"
#include "engine/train/trainer.h"
#include "tools/commands.h"
#include "tools/flags.h"
#include "tools/seeds.h"

namespace ruche::tools {
namespace {

// A flag that sets a SolverParameter field. `set_to` fixes the value for switches
// (--no-shuffle sets shuffle: false); empty means the flag takes a value.
struct SolverFlag {
  const char* flag;
  const char* field;
  const char* help;
  const char* set_to = "";
};

const SolverFlag kSolverFlags[] = {
    {"--optimizer", "type",
     "sgd, adam, adamw, rmsprop, lars (adam, adamw, rmsprop drop the default recipe's nesterov; "
     "rmsprop also its momentum 0.9, unless --nesterov / --momentum say otherwise)"},
    {"--lr", "base_lr", "base learning rate"},
    {"--momentum", "momentum", "SGD / RMSprop / LARS momentum"},
    {"--nesterov", "nesterov", "Nesterov momentum (the default solver's SGD has it)", "true"},
    {"--no-nesterov", "nesterov", "plain (heavy-ball) momentum", "false"},
    {"--weight-decay", "weight_decay", "L2 (AdamW: decoupled)"},
    {"--l1", "l1_decay", "L1 penalty"},
    {"--beta1", "beta1", "Adam beta1"},
    {"--beta2", "beta2", "Adam beta2"},
    {"--eps", "epsilon", "Adam / RMSprop epsilon"},
    {"--clip-grad-norm", "clip_grad_norm", "clip the global gradient norm (0: off)"},
    {"--no-decay-bn-bias", "no_decay_bn_bias", "no weight decay on BN and biases", "true"},
    {"--lr-policy", "lr_policy", "fixed, step, multistep, exp, poly, cosine"},
    {"--gamma", "gamma", "decay factor of step / multistep / exp"},
    {"--step-size", "stepsize", "steps between decays (step)"},
    {"--min-lr", "min_lr", "floor of cosine / poly"},
    {"--warmup-steps", "warmup_steps", "linear warmup steps"},
    {"--warmup-epochs", "warmup_epochs", "linear warmup epochs"},
    {"--batch-size", "batch_size", "per rank"},
    {"--epochs", "max_epochs", "epochs to train"},
    {"--max-steps", "max_iter", "steps to train (wins over --epochs)"},
    {"--accumulate", "iter_size", "micro-batches per step"},
    {"--log-every", "display", "steps between progress lines"},
    {"--seed", "random_seed", "seed of every random number"},
    {"--val-fraction", "val_fraction", "training data held out for validation"},
    {"--no-shuffle", "shuffle", "visit samples in order", "false"},
    {"--no-augment", "augment", "no crop / flip", "false"},
    {"--patience", "patience", "early stopping after N epochs without gain (0: off)"},
    {"--monitor", "monitor", "val_acc or val_loss"},
    {"--on-nan", "on_nan", "stop (exit 3) or skip the step"},
    {"--lr-scaling", "lr_scaling", "none, or linear: lr x global batch / 256 (with warmup)"},
    {"--eval-every", "eval_every_epochs", "validate every N epochs (and after the last)"},
    {"--eval-every-steps", "eval_every_steps",
     "validate every N steps instead (and after the last; 0: per epoch)"},
    {"--momentum-form", "momentum_form",
     "sgd: pytorch (v = m v + g; w -= lr v) or caffe (v = m v + lr g; w -= v)"},
    {"--target-accuracy", "target_accuracy",
     "stop at this validation top-1 and report the time to reach it (0: off)"},
    {"--label-smoothing", "label_smoothing", "cross-entropy label smoothing (0: the net's)"},
    {"--ema", "ema_decay",
     "average the weights: ema = d*ema + (1-d)*w after each step; validated, RUN/ema.npz"},
    {"--balance", "balance", "none, over or under: class-balanced epochs (training split)"},
    {"--class-weights", "class_weights",
     "auto (n / (classes x count), on the training split) or w0,w1,...: loss weight per class"},
    {"--smote", "smote_k", "SMOTE with K nearest neighbours balances vector (npz) classes"},
    {"--reconstruct", "reconstruct",
     "the target is the input (after augmentation, before noise and normalisation): autoencoders",
     "true"},
    {"--noise", "noise", "gaussian:S or mask:P: corrupt the training input only (denoising)"},
    {"--train-classes", "train_classes",
     "0,2,3,...: train on these classes only (validation and test keep every class)"},
};

// Whether a launcher (mpirun, srun) started this process as a rank of a job: then ruche joins
// the job's MPI world; a lone `ruche train` never touches MPI.
bool launched_as_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

// Threads per rank: --threads, else OMP_NUM_THREADS, else this rank's share of its host's cores
// (the cores of its affinity mask over the ranks of the host whose masks overlap it), so ranks
// that mpirun did not bind do not start cores x ranks threads between them. The trainer prints
// the choice with the run's other facts, as torchrun does.
void choose_threads(TrainRun& run, const CoreShare& share) {
  const int flag = run.threads;
  char why[160];
  int threads = flag;
  const char* omp = std::getenv("OMP_NUM_THREADS");
  const int omp_threads = omp ? std::atoi(omp) : 0;
  if (flag > 0) {
    std::snprintf(why, sizeof why, "--threads");
  } else if (omp_threads > 0) {
    threads = omp_threads;
    std::snprintf(why, sizeof why, "OMP_NUM_THREADS");
  } else {
    threads = share.threads();
    std::snprintf(why, sizeof why, "%d core%s in this rank's affinity mask, shared by %d rank%s",
                  share.cores, share.cores == 1 ? "" : "s", share.sharing,
                  share.sharing == 1 ? "" : "s");
  }
  run.threads = threads;
  run.threads_source = why;
}

// Trains as one rank of the job: only rank 0 prints (unless --verbose-ranks), and a rank that
// fails ends the whole job after saying why, so the others never wait for it.
// comm "nccl" puts device buffers on NCCL even in a world of one (--comm).
int train_as_rank(TrainRun run, const DeviceFlags& device, const CommOptions& comm_options,
                  const std::string& comm_backend, bool verbose_ranks) {
  WorldOptions world_options = WorldOptions::from_env();
  // A rank stopped or dead before the first collective would hang the others in MPI_Init.
  world_options.start_timeout_seconds = comm_options.timeout_seconds;
  World world(world_options);
  if (world.rank() != 0 && !verbose_ranks) {
    RUCHE_CHECK(std::freopen("/dev/null", "w", stdout) != nullptr) << "cannot silence stdout";
  }
  try {
    choose_threads(run, world.core_share());
    run.device = device.resolve(world.local_rank(), world.local_size());
    const bool nccl_alone = comm_backend == "nccl";
    run.parallel.communicate_alone = nccl_alone;
    MpiCommunicator comm(world, comm_options);
#if RUCHE_WITH_CUDA
    if (run.device.is_cuda() && (world.size() > 1 || nccl_alone)) {
      // Device buffers (gradients, parameters, batch-norm statistics) go by NCCL; the step's
      // votes, evaluation sums and barriers stay on MPI.
      NcclCommunicator nccl(world, comm, run.device.index, comm_options);
      RoutedCommunicator routed(comm, nccl);
      return train(run, &routed);
    }
#endif
    return train(run, &comm);
  } catch (const Error& e) {
    std::fprintf(stderr, "ruche: rank %d: error: %s\n", world.rank(), e.what());
    if (world.size() > 1) {
      write_abort_note(comm_options.run_dir, world.rank(),
                       "ruche: rank " + std::to_string(world.rank()) + ": error: " + e.what(), 2);
      world.abort(2);
    }
    throw;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ruche: rank %d: internal error: %s\n", world.rank(), e.what());
    if (world.size() > 1) {
      write_abort_note(
          comm_options.run_dir, world.rank(),
          "ruche: rank " + std::to_string(world.rank()) + ": internal error: " + e.what(), 1);
      world.abort(1);
    }
    throw;
  }
}

void set_field(proto::SolverParameter& solver, const std::string& field, const std::string& value,
               const std::string& flag) {
  const auto* descriptor = proto::SolverParameter::descriptor()->FindFieldByName(field);
  RUCHE_CHECK(descriptor != nullptr) << "no solver field " << field;
  // TextFormat parses the value exactly as in a solver.prototxt, so flags and files agree.
  const std::string text = descriptor->type() == google::protobuf::FieldDescriptor::TYPE_STRING
                               ? field + ": \"" + value + "\""
                               : field + ": " + value;
  proto::SolverParameter parsed;
  try {
    parse_prototxt(text, flag, parsed);
  } catch (const Error&) {
    RUCHE_FAIL() << flag << ": '" << value << "' is not a valid " << descriptor->type_name()
                 << " for " << field;
  }
  solver.MergeFrom(parsed);
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string model, net, solver, data, layout = "nchw", out = "run", normalize = "auto";
    std::string val_data;
    DeviceFlags device;
    std::string init_weights, synthetic_shape;
    int synthetic_classes = 0;
    int bottleneck = 0;
    bool init_partial = false;
    int seeds = 0;  // --seeds N (tools/seeds.h)
    int threads = 0;
    int data_workers = 0, prefetch = 0;
    double bucket_mb = 25, comm_timeout = CommOptions().timeout_seconds;
    std::string grad_compression = "none";
    int zero = 0;
    std::string comm = "auto";
    bool sync_bn = false, verbose_ranks = false, check_collectives = false, timeline = false;
    bool hierarchical_allreduce = false;
    bool no_tensorboard = false;
    int tb_histograms = 0;
    CheckpointOptions checkpoint;
    std::string checkpoint_every_steps = "0";  // N or auto[:P%]
    bool no_checkpoint = false;
    std::map<std::string, std::string> values;  // solver flag -> value given
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand("train", "Train a network");
  cmd->add_option(
      "--model", o.model, "built-in model: " + [] {
        std::string names;
        for (const auto& n : builtin_model_names())
          names.append(names.empty() ? "" : ", ").append(n);
        return names + " (default " + kDefaultModel + ")";
      }());
  cmd->add_option("--bottleneck", o.bottleneck,
                  "conv_autoencoder, mlp_autoencoder: the code's size (default 32)");
  cmd->add_option("--net", o.net, "net.prototxt (instead of --model)");
  cmd->add_option("--seeds", o.seeds,
                  "train N times, seeds S..S+N-1 (S: --seed), into OUT/seed-1 ... OUT/seed-N, one "
                  "after another in this process; ruche compare OUT sums them up");
  cmd->add_option("--solver", o.solver, "solver.prototxt (default: ruche's recipe)");
  cmd->add_option("--data", o.data, std::string("dataset (default ") + kDefaultDataDir + ")");
  cmd->add_option("--val-data", o.val_data,
                  "validation .tar shards: a pattern ('val-{000000..000003}.tar') or a directory "
                  "(default: the val-* shards beside --data's)");
  cmd->add_option("--data-layout", o.layout, "npz layout: nchw or nhwc")
      ->check(CLI::IsMember({"nchw", "nhwc"}));
  cmd->add_option("--normalize", o.normalize,
                  "input normalisation: auto (a preprocess.json beside --net, else the data "
                  "set's statistics), none, or M1,M2,M3/S1,S2,S3 per channel")
      ->capture_default_str();
  cmd->add_option("--synthetic-shape", o.synthetic_shape,
                  "sample shape C,H,W of --data synthetic (default 3,32,32)");
  cmd->add_option("--synthetic-classes", o.synthetic_classes,
                  "classes of --data synthetic (default 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--out", o.out, "run directory")->capture_default_str();
  cmd->add_option("--threads", o.threads,
                  "CPU threads per rank (0: OMP_NUM_THREADS, else this rank's share of the cores "
                  "in its affinity mask)");
  cmd->add_option("--data-workers", o.data_workers,
                  "data loader threads (0: all cores for JPEG folders, 1 for in-memory data)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--prefetch", o.prefetch, "batches the loader makes ahead (0: data workers + 1)")
      ->check(CLI::NonNegativeNumber);
  o.device.add_to(cmd);
  cmd->add_option("--init-weights", o.init_weights, "start from these weights (.npz)");
  cmd->add_flag("--init-partial", o.init_partial,
                "load what matches from --init-weights and list the rest");
  cmd->add_option("--resume", o.checkpoint.resume,
                  "auto (RUN/ckpt/latest; fresh when none) or a checkpoint directory");
  cmd->add_flag("--no-checkpoint", o.no_checkpoint, "write no checkpoints");
  CLI::Option* every_steps = cmd->add_option(
      "--checkpoint-every-steps", o.checkpoint_every_steps,
      "also checkpoint every N steps (0: off; solver checkpoint_every_steps, Caffe's snapshot); "
      "auto[:P%]: measure a step and a save and checkpoint as often as keeps the saves within "
      "P% (2) of the time, instead of every 30 minutes");
  CLI::Option* every_minutes =
      cmd->add_option("--checkpoint-every-minutes", o.checkpoint.every_minutes,
                      "checkpoint every M minutes (0: off; besides every epoch and the end)")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
  cmd->add_option("--keep-checkpoints", o.checkpoint.keep, "committed checkpoints kept (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--bucket-mb", o.bucket_mb,
                  "gradient bucket size in MB (the first bucket is 1 MB)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--sync-bn", o.sync_bn,
                "batch norm uses the statistics of the global batch (all ranks)");
  cmd->add_option("--grad-compression", o.grad_compression,
                  "all-reduce gradients as none (fp32), fp16 or bf16")
      ->capture_default_str();
  cmd->add_option("--zero", o.zero,
                  "ZeRO stage: 0 every rank keeps the whole optimizer state, 1 each keeps its "
                  "range of it (reduce-scatter gradients, all-gather parameters)")
      ->check(CLI::Range(0, 1))
      ->capture_default_str();
  cmd->add_option("--comm", o.comm,
                  "auto: MPI, and NCCL for --device cuda on several ranks; nccl: NCCL even for "
                  "one rank (with or without mpirun: checks the NCCL path on one GPU)")
      ->check(CLI::IsMember({"auto", "nccl"}))
      ->capture_default_str();
  cmd->add_option("--comm-timeout", o.comm_timeout,
                  "seconds a collective may take before the watchdog aborts the job (0: never)")
      ->capture_default_str();
  cmd->add_flag("--check-collectives", o.check_collectives,
                "ranks compare every collective before running it (debugging a hang)");
  cmd->add_flag("--hierarchical-allreduce", o.hierarchical_allreduce,
                "all-reduce as reduce in the node, all-reduce across nodes, broadcast in the node "
                "(slow inter-node links, many ranks per node)");
  cmd->add_flag("--verbose-ranks", o.verbose_ranks, "every rank prints, not only rank 0");
  cmd->add_flag("--timeline", o.timeline,
                "RUN/timeline.json: a Chrome trace of every rank (layers, all-reduces, optimizer)");
  cmd->add_flag("--no-tensorboard", o.no_tensorboard,
                "write no TensorBoard event file (RUN/events.out.tfevents.*)");
  cmd->add_option("--tb-histograms", o.tb_histograms,
                  "TensorBoard histograms of every weight and gradient each N steps (0: off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  for (const SolverFlag& f : kSolverFlags) {
    const std::string help = std::string(f.help) + "  [solver: " + f.field + "]";
    if (*f.set_to) {
      cmd->add_flag_callback(
          f.flag, [&f] { o.values[f.flag] = f.set_to; }, help);
    } else {
      cmd->add_option_function<std::string>(
          f.flag, [&f](const std::string& v) { o.values[f.flag] = v; }, help);
    }
  }
  cmd->callback([&exit_code, every_minutes, every_steps] {
    RUCHE_REQUIRE(o.model.empty() || o.net.empty()) << "give --model or --net, not both";
    TrainRun run;
    if (!o.net.empty()) {
      run.net = load_net(o.net, &run.source);
    } else {
      run.model = o.model.empty() ? kDefaultModel : o.model;
      builtin_model(run.model, {});  // an unknown name fails here, before any data is read
      run.bottleneck = o.bottleneck;
    }
    if (o.solver.empty()) {
      run.solver = default_solver();
    } else {
      load_prototxt(o.solver, run.solver);
    }
    RUCHE_REQUIRE(!o.values.count("--nesterov") || !o.values.count("--no-nesterov"))
        << "give --nesterov or --no-nesterov, not both";
    for (const SolverFlag& f : kSolverFlags) {
      const auto it = o.values.find(f.flag);
      if (it != o.values.end()) set_field(run.solver, f.field, it->second, f.flag);
    }
    // Nesterov belongs to momentum SGD (and LARS): --optimizer adam, adamw or rmsprop drops it
    // unless --nesterov asks for it (then the optimizer says why not). The default recipe's
    // momentum 0.9 is SGD's too: rmsprop chosen by flag on it takes PyTorch's 0 unless --momentum.
    const auto chosen = o.values.find("--optimizer");
    if (chosen != o.values.end() && chosen->second != "sgd" && chosen->second != "lars") {
      if (!o.values.count("--nesterov")) run.solver.clear_nesterov();
      if (o.solver.empty() && chosen->second == "rmsprop" && !o.values.count("--momentum")) {
        run.solver.clear_momentum();
      }
    }
    const NormalizeChoice normalize = parse_normalize_flag(o.normalize);
    if (!o.net.empty() && normalize.mode == NormalizeChoice::Mode::automatic) {
      // An imported net (or an earlier run's net.prototxt) brings its record: it wins over auto.
      run.preprocess = PreprocessSource::in_dir(std::filesystem::path(o.net).parent_path());
    }
    run.preprocess.normalize = normalize;
    run.data = DataSpec(o.data);
    run.data.val_data = o.val_data;
    run.data.layout = o.layout == "nhwc" ? DataLayout::nhwc : DataLayout::nchw;
    if (!o.synthetic_shape.empty()) {
      std::vector<std::int64_t> dims;
      std::size_t pos = 0;
      while (pos <= o.synthetic_shape.size()) {
        const std::size_t comma =
            std::min(o.synthetic_shape.find(',', pos), o.synthetic_shape.size());
        const std::string part = o.synthetic_shape.substr(pos, comma - pos);
        char* end = nullptr;
        const long long d = std::strtoll(part.c_str(), &end, 10);
        RUCHE_REQUIRE(!part.empty() && *end == '\0' && d > 0)
            << "--synthetic-shape " << o.synthetic_shape << ": want positive C,H,W";
        dims.push_back(d);
        pos = comma + 1;
      }
      run.data.synthetic.sample_shape = Shape(dims.begin(), dims.end());
    }
    if (o.synthetic_classes > 0) run.data.synthetic.num_classes = o.synthetic_classes;
    run.out_dir = o.out;
    run.threads = o.threads;
    run.data_workers = o.data_workers;
    run.prefetch = o.prefetch;
    run.init_weights = o.init_weights;
    run.init_partial = o.init_partial;
    run.gpu_math = o.device.gpu_math();
    run.parallel.reducer.bucket_bytes = static_cast<std::int64_t>(o.bucket_mb * (1 << 20));
    run.parallel.reducer.first_bucket_bytes = std::min<std::int64_t>(
        run.parallel.reducer.first_bucket_bytes, run.parallel.reducer.bucket_bytes);
    run.parallel.reducer.compression = grad_compression_from_name(o.grad_compression);
    run.parallel.sync_bn = o.sync_bn;
    run.parallel.zero = o.zero;
    run.timeline = o.timeline;
    run.tensorboard = !o.no_tensorboard;
    run.tb_histograms = o.tb_histograms;
    run.checkpoint = o.checkpoint;
    if (every_steps->count() == 0 && run.solver.checkpoint_every_steps() > 0) {
      o.checkpoint_every_steps = std::to_string(run.solver.checkpoint_every_steps());
    }
    parse_checkpoint_every_steps(o.checkpoint_every_steps, run.checkpoint);
    if (run.checkpoint.auto_percent > 0) {
      RUCHE_REQUIRE(every_minutes->count() == 0)
          << "--checkpoint-every-steps auto chooses the cadence itself: give it or "
             "--checkpoint-every-minutes, not both";
      run.checkpoint.every_minutes = 0;  // the measured cadence replaces the 30-minute timer
    }
    run.checkpoint.enabled = !o.no_checkpoint;
    CommOptions comm_options;
    comm_options.timeout_seconds = o.comm_timeout;
    comm_options.check_collectives = o.check_collectives;
    comm_options.hierarchical_allreduce = o.hierarchical_allreduce;
    // Heartbeats and abort notes go to the run directory (absolute: the ranks' working
    // directories need not agree).
    comm_options.run_dir = std::filesystem::absolute(o.out).lexically_normal().string();
    RUCHE_REQUIRE(o.comm != "nccl" || o.device.device.rfind("cuda", 0) == 0)
        << "--comm nccl: NCCL moves device buffers; give --device cuda";
    if (o.seeds > 0) {  // one process, one run after another: no launcher
      RUCHE_REQUIRE(!launched_as_rank() && o.comm != "nccl")
          << "--seeds runs its seeds one after another in one process; under a launcher start "
          << "one job per seed with --seed S --out RUN/seed-K";
      run.device = o.device.resolve();
      choose_threads(run, share_cores({this_thread_cpus()}, 0));
      exit_code = train_seeds(run, o.seeds);
      return;
    }
    if (launched_as_rank() || o.comm == "nccl") {  // alone: a singleton World
      exit_code = train_as_rank(run, o.device, comm_options, o.comm, o.verbose_ranks);
    } else {
      run.device = o.device.resolve();
      choose_threads(run, share_cores({this_thread_cpus()}, 0));
      exit_code = train(run);
    }
  });
}

}  // namespace ruche::tools
