#include "engine/train/train_data.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "engine/data/balance.h"
#include "engine/data/loader.h"
#include "engine/data/shard_index.h"
#include "engine/data/shard_loader.h"
#include "engine/data/smote.h"
#include "engine/error.h"

namespace ruche {
namespace {

// Decoding JPEGs needs every core; copying an in-memory sample needs one thread.
int loader_threads(const TrainDataOptions& o, bool decodes) {
  if (o.workers > 0) return o.workers;
  return decodes ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) : 1;
}

TrainData open_shards(const DataSpec& spec, const proto::SolverParameter& solver,
                      const TrainDataOptions& o) {
  const ShardIndex index = read_shard_index(spec.data);
  RUCHE_REQUIRE(solver.balance() == "none" && solver.smote_k() == 0 &&
                solver.class_weights() != "auto")
      << spec.data << ": --balance, --smote and --class-weights auto count the training classes "
      << "of an indexable dataset, and shards stream; give --class-weights w0,w1,...";
  TrainData d;
  d.kind = "shards";
  d.classes = static_cast<int>(index.classes.size());
  d.class_names = index.classes;
  if (!solver.class_weights().empty())
    d.class_weights = parse_class_weights(solver.class_weights(), d.classes, {});
  ShardLoaderOptions train;
  train.batch_size = solver.batch_size();
  train.seed = solver.random_seed();
  if (!solver.shuffle()) train.shuffle_buffer = 0;
  train.threads = loader_threads(o, true);
  train.depth = o.prefetch;
  train.device = o.device;
  d.sample_shape = Shape{3, train.transform.crop, train.transform.crop};
  auto loader = std::make_unique<ShardLoader>(index, "train", o.rank, o.ranks, train);
  d.train_size = loader->split_size();
  d.train = std::move(loader);
  if (!index.split("val").empty()) {
    ShardLoaderOptions val = train;
    val.train = false;  // the validation transform, in order
    val.pad = false;    // every sample once; the last batch may be short
    auto v = std::make_unique<ShardLoader>(index, "val", o.rank, o.ranks, val);
    d.val_size = v->split_size();
    d.val = std::move(v);
  }
  return d;
}

}  // namespace

bool is_shard_dir(const std::string& dir) {
  return !dir.empty() && std::filesystem::is_regular_file(std::filesystem::path(dir) /
                                                          kShardIndexFile);
}

TrainData open_train_data(const DataSpec& spec, const proto::SolverParameter& solver,
                          const TrainDataOptions& o) {
  if (is_shard_dir(spec.data)) return open_shards(spec, solver, o);
  TrainData d;
  d.splits = open_splits(spec, solver.val_fraction(), solver.random_seed());
  // Class imbalance: weights counted on the training split as it is, then SMOTE grows it.
  const BalanceMode balance = parse_balance_mode(solver.balance());
  if (!solver.class_weights().empty()) {
    d.class_weights = parse_class_weights(solver.class_weights(), d.splits.train->num_classes(),
                                          dataset_labels(*d.splits.train));
  }
  if (solver.smote_k() > 0) {
    d.splits.train = smote_balance(*d.splits.train, solver.smote_k(), solver.random_seed());
  }
  const Dataset& train_set = *d.splits.train;
  d.kind = train_set.kind();
  d.sample_shape = train_set.sample_shape();
  d.classes = train_set.num_classes();
  d.class_names = train_set.class_names();
  d.train_size = train_set.size();
  d.val_size = d.splits.val ? d.splits.val->size() : 0;
  d.test_size = d.splits.test ? d.splits.test->size() : 0;

  TransformOptions transform;
  transform.norm = default_normalization(train_set);
  transform.seed = solver.random_seed();
  transform.augment.enabled = solver.augment();
  d.norm = transform.norm;
  LoaderOptions train_opts;
  train_opts.batch_size = solver.batch_size();
  train_opts.drop_last = true;
  train_opts.transform = transform;
  train_opts.device = o.device;
  train_opts.threads = loader_threads(o, train_set.transforms_itself());
  train_opts.depth = o.prefetch;
  SamplerOptions sampler;
  sampler.shuffle = solver.shuffle();
  sampler.seed = solver.random_seed();
  if (balance != BalanceMode::none) {
    sampler.balance = balance;
    sampler.labels = std::make_shared<const std::vector<std::int32_t>>(dataset_labels(train_set));
    sampler.classes = train_set.num_classes();
  }
  d.train = std::make_unique<BatchLoader>(
      d.splits.train, DistributedSampler(train_set.size(), o.rank, o.ranks, sampler), train_opts);
  if (d.splits.val) {
    LoaderOptions eval_opts = train_opts;
    eval_opts.drop_last = false;
    eval_opts.transform.augment.enabled = false;
    SamplerOptions in_order;  // each rank evaluates its share, every sample once
    in_order.shuffle = false;
    in_order.pad = false;
    d.val = std::make_unique<BatchLoader>(
        d.splits.val, DistributedSampler(d.splits.val->size(), o.rank, o.ranks, in_order),
        eval_opts);
  }
  return d;
}

}  // namespace ruche
