#include "engine/train/train_data.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "engine/data/balance.h"
#include "engine/data/image_folder.h"
#include "engine/data/index_shards.h"
#include "engine/data/loader.h"
#include "engine/data/shard_index.h"
#include "engine/data/shard_loader.h"
#include "engine/data/smote.h"
#include "engine/data/split.h"
#include "engine/error.h"
#include "engine/train/task.h"

namespace ruche {
namespace {

// Decoding JPEGs needs every core; copying an in-memory sample needs one thread.
int loader_threads(const TrainDataOptions& o, bool decodes) {
  if (o.workers > 0) return o.workers;
  return decodes ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) : 1;
}

// The normalisation of `source`: its record's, or what --normalize chooses (train: null for JPEG
// sources, whose statistics are ImageNet's unless said otherwise).
Normalization normalization_for(const PreprocessSource& source, const InputFacts& facts,
                                const Dataset* train) {
  if (source.record) {
    return normalization_of(*source.record, source.record_dir, facts, source.record_path());
  }
  return choose_normalization(source.normalize, facts, train);
}

// The record of the run: the one given, else the one made of facts and norm.
proto::Preprocess record_for(const PreprocessSource& source, const InputFacts& facts,
                             const Normalization& norm) {
  return source.record ? *source.record : make_preprocess(facts, norm);
}

TrainData open_shards(const DataSpec& spec, const proto::SolverParameter& solver,
                      const TrainDataOptions& o) {
  ShardSetOptions set_options;
  set_options.rank = o.rank;
  set_options.workers = o.workers;
  const ShardIndex index = open_shard_set(spec.data, spec.val_data, set_options);
  RUCHE_REQUIRE(!solver.reconstruct() && solver.noise().empty() && solver.train_classes().empty())
      << spec.data << ": --reconstruct, --noise and --train-classes read in-memory sources (IDX, "
      << "CIFAR, npz); shards are decoded and normalised in one pass";
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
  const InputFacts facts{"shards", true, d.sample_shape, d.class_names};
  const Normalization norm = normalization_for(o.preprocess, facts, nullptr);
  apply_to_decoder(norm, train.transform, spec.data);
  d.preprocess = record_for(o.preprocess, facts, norm);
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

// --train-classes: the training split keeps only these classes (validation and test keep every
// one, so a model trained on some classes meets the others there: anomaly detection).
DatasetPtr keep_classes(const DatasetPtr& train, const std::string& list) {
  std::vector<bool> keep(static_cast<std::size_t>(train->num_classes()), false);
  for (const int c : parse_class_list(list, "--train-classes")) {
    RUCHE_REQUIRE(c < train->num_classes())
        << "--train-classes " << list << ": class " << c << " of " << train->num_classes();
    keep[static_cast<std::size_t>(c)] = true;
  }
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < train->size(); ++i) {
    if (keep[static_cast<std::size_t>(train->label(i))]) indices.push_back(i);
  }
  return std::make_shared<Subset>(train, std::move(indices));
}

}  // namespace

bool is_shard_dir(const std::string& dir) { return names_shards(dir); }

NormalizedSplits open_normalized_splits(const DataSpec& spec, double val_fraction,
                                        std::uint64_t seed, const PreprocessSource& source) {
  NormalizedSplits n;
  if (is_image_folder(spec.data)) {  // normalised as decoded: the decoder takes it
    DataSpec decoded = spec;
    const Shape crop{3, spec.image.crop, spec.image.crop};
    const Normalization norm =
        normalization_for(source, InputFacts{"imagefolder", true, crop, {}}, nullptr);
    apply_to_decoder(norm, decoded.image, spec.data);
    n.splits = open_splits(decoded, val_fraction, seed);
    n.record = record_for(source, input_facts(*n.splits.train), norm);
    return n;
  }
  n.splits = open_splits(spec, val_fraction, seed);
  const InputFacts facts = input_facts(*n.splits.train);
  n.norm = normalization_for(source, facts, n.splits.train.get());
  n.record = record_for(source, facts, n.norm);
  return n;
}

TrainData open_train_data(const DataSpec& spec, const proto::SolverParameter& solver,
                          const TrainDataOptions& o) {
  if (is_shard_dir(spec.data)) return open_shards(spec, solver, o);
  RUCHE_REQUIRE(spec.val_data.empty())
      << "--val-data " << spec.val_data << ": validation shards go with .tar shards as --data, and "
      << spec.data << " holds none";
  TrainData d;
  NormalizedSplits opened =
      open_normalized_splits(spec, solver.val_fraction(), solver.random_seed(), o.preprocess);
  d.splits = std::move(opened.splits);
  d.norm = std::move(opened.norm);
  d.preprocess = std::move(opened.record);
  // Class imbalance: weights counted on the training split as it is, then SMOTE grows it.
  const BalanceMode balance = parse_balance_mode(solver.balance());
  RUCHE_REQUIRE(d.splits.train->target_shape().ndim() == 0 ||
                (balance == BalanceMode::none && solver.smote_k() == 0 &&
                 solver.class_weights().empty() && solver.train_classes().empty()))
      << spec.data << ": its y is float32 (regression targets), so there are no classes for "
      << "--balance, --smote, --class-weights or --train-classes";
  const int classes = d.splits.train->num_classes();
  RUCHE_REQUIRE(!spec.ignore_label || (*spec.ignore_label >= 0 && *spec.ignore_label < classes) ||
                (balance == BalanceMode::none && solver.smote_k() == 0 &&
                 solver.class_weights() != "auto" && solver.train_classes().empty()))
      << spec.data << ": the loss's ignore_label " << *spec.ignore_label << " is no class of the "
      << classes << ", and --balance, --smote, --class-weights auto and --train-classes count "
      << "samples by class";
  if (!solver.class_weights().empty()) {
    d.class_weights = parse_class_weights(solver.class_weights(), d.splits.train->num_classes(),
                                          dataset_labels(*d.splits.train));
  }
  if (solver.smote_k() > 0) {
    d.splits.train = smote_balance(*d.splits.train, solver.smote_k(), solver.random_seed());
  }
  if (!solver.train_classes().empty()) {
    d.splits.train = keep_classes(d.splits.train, solver.train_classes());
  }
  const Dataset& train_set = *d.splits.train;
  d.kind = train_set.kind();
  d.sample_shape = train_set.sample_shape();
  d.target_shape = solver.reconstruct() ? d.sample_shape : train_set.target_shape();
  d.classes = train_set.num_classes();
  d.class_names = train_set.class_names();
  d.train_size = train_set.size();
  d.val_size = d.splits.val ? d.splits.val->size() : 0;
  d.test_size = d.splits.test ? d.splits.test->size() : 0;

  TransformOptions transform;
  transform.norm = d.norm;
  transform.seed = solver.random_seed();
  transform.augment.enabled = solver.augment();
  transform.noise = parse_noise(solver.noise());
  LoaderOptions train_opts;
  train_opts.batch_size = solver.batch_size();
  train_opts.drop_last = true;
  train_opts.transform = transform;
  train_opts.target_is_input = solver.reconstruct();
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
    eval_opts.transform.noise = NoiseOptions();  // validation sees clean inputs
    SamplerOptions in_order;                     // each rank evaluates its share, every sample once
    in_order.shuffle = false;
    in_order.pad = false;
    d.val = std::make_unique<BatchLoader>(
        d.splits.val, DistributedSampler(d.splits.val->size(), o.rank, o.ranks, in_order),
        eval_opts);
  }
  return d;
}

}  // namespace ruche
