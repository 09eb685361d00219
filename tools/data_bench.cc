// ruche data bench (and its hidden old name data-bench): only the input pipeline. A ShardLoader
// over `ruche convert` shards (any other --data: the loader ruche train opens for it), as
// training opens it, drawn for --warmup batches, then --batches timed; prints images/s and the
// CPU time spent (getrusage, every thread), so benchmarks/input_pipeline.py can weigh it against
// PyTorch's DataLoader without a network's compute in the way.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <filesystem>
#include <memory>

#include "engine/data/shard_index.h"
#include "engine/data/shard_loader.h"
#include "engine/error.h"
#include "engine/train/train_data.h"
#include "engine/train/trainer.h"
#include "tools/commands.h"

namespace ruche::tools {
namespace {

double cpu_seconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

}  // namespace

void add_data_bench_command(CLI::App& app, int& exit_code, const char* name) {
  struct Options {
    std::string data, split = "train";
    int workers = 1, prefetch = 0, warmup = 4;
    std::int64_t batches = 50, batch_size = 32;
    bool dct_scaling = true;
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand(name, "Images/s of a data source's loader alone");
  // data-bench: hidden, the name benchmarks/input_pipeline.py has always called
  if (std::string(name) == "data-bench") cmd->group("");
  cmd->add_option("--data", o.data,
                  "a shard directory (DIR/index.tsv), or any --data of ruche train (IDX, CIFAR, "
                  "npz, ImageFolder: its loader with the default recipe's augmentation)")
      ->required();
  cmd->add_option("--split", o.split,
                  "train (random-resized-crop, flip) or val (resize, center "
                  "crop)")
      ->capture_default_str();
  cmd->add_option("--workers", o.workers, "decode threads (--data-workers)")->capture_default_str();
  cmd->add_option("--prefetch", o.prefetch, "batches buffered (0: workers + 1)")
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "images per batch")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "batches drawn before the clock starts")
      ->capture_default_str();
  cmd->add_option("--batches", o.batches, "batches timed (epochs restart as needed)")
      ->capture_default_str();
  cmd->add_flag("!--no-dct-scaling", o.dct_scaling,
                "decode every JPEG at full size, as PIL does, instead of at the smallest DCT "
                "scale the crop allows");
  cmd->callback([&exit_code] {
    RUCHE_REQUIRE(o.workers >= 1) << "data-bench: --workers must be at least 1, got " << o.workers;
    if (o.batches < 1) RUCHE_FAIL() << "data-bench: --batches must be at least 1";
    std::unique_ptr<BatchSource> shards;
    TrainData indexable;  // keeps the loaders of an indexable source alive
    BatchSource* loader = nullptr;
    Shape shape;
    if (is_shard_dir(o.data) ||
        std::filesystem::exists(std::filesystem::path(o.data) / kShardIndexFile)) {
      const ShardIndex index = read_shard_index(o.data);
      ShardLoaderOptions options;
      options.batch_size = o.batch_size;
      options.train = o.split == "train";
      options.pad = options.train;
      options.threads = o.workers;
      options.depth = o.prefetch;
      options.transform.dct_scaling = o.dct_scaling;
      auto l = std::make_unique<ShardLoader>(index, o.split, 0, 1, options);  // empty: its error
      shape = l->batch_shape();
      shards = std::move(l);
      loader = shards.get();
    } else {  // IDX, CIFAR, npz, ImageFolder: the loaders ruche train opens, its default recipe
      RUCHE_REQUIRE(o.split == "train" || o.split == "val")
          << "data bench --split " << o.split << ": expected train or val";
      proto::SolverParameter solver = default_solver();
      solver.set_batch_size(static_cast<std::int32_t>(o.batch_size));
      TrainDataOptions options;
      options.workers = o.workers;
      options.prefetch = o.prefetch;
      indexable = open_train_data(DataSpec(o.data), solver, options);
      loader = o.split == "train" ? indexable.train.get() : indexable.val.get();
      RUCHE_REQUIRE(loader != nullptr) << o.data << ": no validation split to time";
      shape = Shape{o.batch_size};
      for (std::int64_t d : indexable.sample_shape) shape.push_back(d);
    }
    Tensor x = Tensor::empty(shape);
    Tensor y = Tensor::zeros({o.batch_size}, DType::i32);

    std::uint32_t epoch = 0;
    loader->start_epoch(epoch);
    auto draw = [&] {  // one batch, into the next epoch when this one is over
      std::int64_t n = loader->next(x, y);
      if (n == 0) {
        loader->start_epoch(++epoch);
        n = loader->next(x, y);
      }
      return n;
    };
    for (int i = 0; i < o.warmup; ++i) draw();
    const double cpu0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    std::int64_t images = 0;
    for (std::int64_t i = 0; i < o.batches; ++i) images += draw();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds() - cpu0;
    std::printf(
        "data-bench: %lld images in %.3f s: %.1f img/s; cpu %.3f s (%.2f cores): %.1f img per "
        "cpu-s (workers %d, batch %lld, %s, dct scaling %s)\n",
        static_cast<long long>(images), wall, images / wall, cpu, cpu / wall, images / cpu,
        o.workers, static_cast<long long>(o.batch_size), o.split.c_str(),
        o.dct_scaling ? "on" : "off");
    exit_code = 0;
  });
}

}  // namespace ruche::tools
