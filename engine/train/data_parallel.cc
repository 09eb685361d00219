#include "engine/train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace ruche {
namespace {

// FNV-1a: a stable 64-bit digest of what every rank must agree on.
constexpr std::uint64_t kFnvBasis = 14695981039346656037ull;

std::uint64_t fnv1a(std::uint64_t h, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

std::uint64_t fnv1a(std::uint64_t h, const std::string& text) {
  return fnv1a(h, text.data(), text.size());
}

BufferView host_view(void* data, DType dtype, std::size_t count) {
  return BufferView{data, dtype, static_cast<std::int64_t>(count), Device::cpu()};
}

template <typename T>
std::vector<T> gather(Communicator& comm, const std::vector<T>& mine, DType dtype) {
  const auto ranks = static_cast<std::size_t>(comm.size());
  std::int64_t count = static_cast<std::int64_t>(mine.size());
  std::vector<std::int64_t> counts(ranks);
  comm.all_gather(host_view(&count, DType::i64, 1), host_view(counts.data(), DType::i64, ranks))
      .wait();
  const auto widest = static_cast<std::size_t>(*std::max_element(counts.begin(), counts.end()));
  std::vector<T> padded(mine);
  padded.resize(widest);
  std::vector<T> all(widest * ranks);
  comm.all_gather(host_view(padded.data(), dtype, widest), host_view(all.data(), dtype, all.size()))
      .wait();
  std::vector<T> out;
  for (std::size_t r = 0; r < ranks; ++r) {
    const auto begin = all.begin() + static_cast<std::ptrdiff_t>(r * widest);
    out.insert(out.end(), begin, begin + counts[r]);
  }
  return out;
}

}  // namespace

std::vector<std::string> gather_text(Communicator& comm, const std::string& mine) {
  const std::vector<std::uint8_t> bytes(mine.begin(), mine.end());
  std::vector<std::int64_t> counts(static_cast<std::size_t>(comm.size()));
  auto count = static_cast<std::int64_t>(bytes.size());
  comm.all_gather(host_view(&count, DType::i64, 1),
                  host_view(counts.data(), DType::i64, counts.size()))
      .wait();
  const std::vector<std::uint8_t> all = gather(comm, bytes, DType::u8);
  std::vector<std::string> out;
  std::size_t at = 0;
  for (const std::int64_t n : counts) {
    out.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(at),
                     all.begin() + static_cast<std::ptrdiff_t>(at + static_cast<std::size_t>(n)));
    at += static_cast<std::size_t>(n);
  }
  return out;
}

std::vector<std::int64_t> gather_digests(Communicator& comm, std::uint64_t mine) {
  auto value = static_cast<std::int64_t>(mine);
  std::vector<std::int64_t> all(static_cast<std::size_t>(comm.size()));
  comm.all_gather(host_view(&value, DType::i64, 1), host_view(all.data(), DType::i64, all.size()))
      .wait();
  return all;
}

std::vector<float> gather_floats(Communicator& comm, const std::vector<float>& mine) {
  return gather(comm, mine, DType::f32);
}

std::vector<std::int32_t> gather_ints(Communicator& comm, const std::vector<std::int32_t>& mine) {
  return gather(comm, mine, DType::i32);
}

DataParallel::DataParallel(Communicator* comm, Net& net, const DataParallelOptions& options)
    : comm_(comm && (comm->size() > 1 || options.communicate_alone) ? comm : nullptr),
      net_(net),
      options_(options) {
  RUCHE_REQUIRE(options.zero == 0 || options.zero == 1)
      << "--zero: expected 0 or 1 (ZeRO stage 1 shards the optimizer state), got " << options.zero;
  update_range_ = {0, net.num_trainable()};
  update_grads_ = net.grads();
  update_params_ = net.params();
  if (!comm_) return;
  std::vector<GradRange> tensors;
  for (const ParamEntry& e : net.param_table()) {
    if (!e.frozen) tensors.push_back({e.offset, e.offset + e.count});
  }
  reducer_ = std::make_unique<Reducer>(*comm_, net.grads(), tensors, options.reducer);
  if (options.zero == 1 && !tensors.empty()) {
    zero_ranges_ = plan_zero_ranges(tensors, comm_->size());
    update_range_ = zero_ranges_[static_cast<std::size_t>(comm_->rank())];
    const std::int64_t n = update_range_.end - update_range_.begin;
    // The averaged gradients of this rank's range land here (a reduce-scatter cannot write in
    // place at an offset); the params are a view.
    update_grads_ = Tensor::zeros(Shape{n}, net.grads().dtype(), net.grads().device());
    update_params_ =
        net.params().view(Shape{net.params().numel()}).narrow(0, update_range_.begin, n);
    reducer_->scatter_to(zero_ranges_, update_grads_);
  }
  net.set_grad_ready_hook([this](std::int64_t begin, std::int64_t end) {
    if (reduce_) reducer_->mark_ready(begin, end);
  });
  votes_ =
      Tensor::zeros(Shape{static_cast<std::int64_t>(StepVotes::count)}, DType::f32, Device::cpu());
}

DataParallel::~DataParallel() {
  if (comm_) net_.set_grad_ready_hook(nullptr);
}

void DataParallel::start(const std::string& identity) {
  if (!comm_) return;
  std::uint64_t h = fnv1a(kFnvBasis, identity);
  for (const auto* table : {&net_.param_table(), &net_.buffer_table()}) {
    for (const ParamEntry& e : *table) h = fnv1a(h, e.name + e.shape.str());
  }
  const std::vector<std::int64_t> all = gather_digests(*comm_, h);
  for (std::size_t r = 1; r < all.size(); ++r) {
    char digests[64];
    std::snprintf(digests, sizeof digests, "%016llx against %016llx",
                  static_cast<unsigned long long>(all[r]), static_cast<unsigned long long>(all[0]));
    RUCHE_REQUIRE(all[r] == all[0])
        << "rank " << r << " built a different net or solver than rank 0 (digest " << digests
        << "): every rank must get the same --net or --model, solver, flags and data";
  }
  broadcast_state();
  if (!zero_ranges_.empty() && lead()) {
    std::printf(
        "ZeRO-1: optimizer state sharded over %d ranks; rank 0 keeps elements [%lld, %lld) "
        "of %lld\n",
        size(), static_cast<long long>(update_range_.begin),
        static_cast<long long>(update_range_.end), static_cast<long long>(net_.num_trainable()));
  }
}

void DataParallel::broadcast_state() {
  if (!comm_) return;
  Work params = comm_->broadcast(BufferView::of(net_.params()), 0, "rank 0's parameters");
  Work buffers;
  if (net_.buffers().numel() > 0) {
    buffers = comm_->broadcast(BufferView::of(net_.buffers()), 0, "rank 0's buffers");
  }
  params.wait();
  buffers.wait();
}

void DataParallel::check_in_sync(std::int64_t step) {
  if (!comm_) return;
  std::uint64_t h = kFnvBasis;
  for (const Tensor* t : {&net_.params(), &net_.buffers()}) {
    if (t->numel() == 0) continue;
    const Tensor host = t->to(Device::cpu());
    h = fnv1a(h, host.data<float>(), static_cast<std::size_t>(host.numel()) * sizeof(float));
  }
  const std::vector<std::int64_t> all = gather_digests(*comm_, h);
  for (std::size_t r = 1; r < all.size(); ++r) {
    RUCHE_CHECK(all[r] == all[0]) << "rank " << r
                                  << "'s parameters differ from rank 0's after step " << step
                                  << ": the replicas diverged (a bug in ruche)";
  }
}

void DataParallel::barrier() {
  if (comm_) comm_->barrier().wait();
}

std::vector<std::int64_t> DataParallel::all_gather(const std::vector<std::int64_t>& mine,
                                                   std::string_view label) {
  if (!comm_) return mine;
  std::vector<std::int64_t> in(mine);
  std::vector<std::int64_t> all(mine.size() * static_cast<std::size_t>(size()));
  comm_
      ->all_gather(host_view(in.data(), DType::i64, in.size()),
                   host_view(all.data(), DType::i64, all.size()), label)
      .wait();
  return all;
}

std::vector<std::string> DataParallel::gather_text(const std::string& mine) {
  return comm_ ? ruche::gather_text(*comm_, mine) : std::vector<std::string>{mine};
}

void DataParallel::share_buffers() {
  if (!comm_ || options_.sync_bn || net_.buffers().numel() == 0) return;
  buffers_work_ = comm_->broadcast(BufferView::of(net_.buffers()), 0, "batch-norm statistics");
}

void DataParallel::finish_gradients() {
  if (!comm_) return;
  reducer_->finish();
  if (timeline_) {
    for (std::size_t b = 0; b < reducer_->labels().size(); ++b) {
      const CollectiveTimes& t = reducer_->bucket_times()[b];
      if (t.finished == CollectiveTimes{}.finished) continue;  // NCCL: still on the stream
      timeline_->add(&reducer_->labels()[b], "allreduce", Timeline::comm, t.started, t.finished);
    }
  }
  buffers_work_.wait();
}

StepVotes DataParallel::sum_votes(const StepVotes& mine) {
  if (!comm_) return mine;
  std::copy(mine.v.begin(), mine.v.end(), votes_.data<float>());
  comm_->all_reduce(BufferView::of(votes_), ReduceOp::sum, "the step's votes").wait();
  StepVotes all;
  std::copy(votes_.data<float>(), votes_.data<float>() + StepVotes::count, all.v.begin());
  return all;
}

void DataParallel::queue_grad_sums(Tensor& out) {
  ops::sum_squares_finite(update_grads_,
                          zero_ranges_.empty() ? net_.num_trainable() : update_grads_.numel(), out);
}

GradStats DataParallel::grad_stats(const ops::SumSquaresFinite& mine) {
  GradStats stats;
  if (zero_ranges_.empty()) {
    stats.sum_squares = mine.sum_squares;
    stats.finite = mine.finite;
    stats.norm = std::sqrt(stats.sum_squares);
    return stats;
  }
  // Doubles travel as their bits and are summed in rank order: the same sum on every rank.
  std::int64_t sent[2] = {0, mine.finite ? 1 : 0};
  std::memcpy(&sent[0], &mine.sum_squares, sizeof(double));
  std::vector<std::int64_t> all(2 * static_cast<std::size_t>(size()));
  comm_
      ->all_gather(host_view(sent, DType::i64, 2), host_view(all.data(), DType::i64, all.size()),
                   "ZeRO-1 partial gradient norms")
      .wait();
  for (std::size_t r = 0; r < all.size(); r += 2) {
    double part = 0;
    std::memcpy(&part, &all[r], sizeof(double));
    stats.sum_squares += part;
    stats.finite = stats.finite && all[r + 1] != 0;
  }
  stats.norm = std::sqrt(stats.sum_squares);
  return stats;
}

void DataParallel::share_parameters() {
  if (zero_ranges_.empty()) return;
  std::vector<std::int64_t> counts;
  for (const GradRange& r : zero_ranges_) counts.push_back(r.end - r.begin);
  comm_
      ->all_gather_v(
          BufferView::of(
              net_.params().view(Shape{net_.params().numel()}).narrow(0, 0, net_.num_trainable())),
          std::move(counts), "ZeRO-1 updated parameters")
      .wait();
}

void DataParallel::gather_state(const StateLayout& layout, ByteRange range,
                                std::vector<std::uint8_t>& bytes) {
  if (zero_ranges_.empty()) return;
  const std::int64_t total = layout.total_bytes();
  constexpr std::int64_t kF32 = sizeof(float);
  std::vector<std::uint8_t> staging;
  std::int64_t region_at = 0;
  for (const StateRegion& region : layout.regions) {
    const std::int64_t at = region_at;
    region_at += region.bytes();
    if (region.whole()) continue;
    for (int q = 0; q < size(); ++q) {
      // Rank q's range of this slot, and the span of it the other ranks' shards need.
      const GradRange& held = zero_ranges_[static_cast<std::size_t>(q)];
      const ByteRange piece{at + held.begin * kF32, at + held.end * kF32};
      ByteRange need{piece.end, piece.begin};
      for (int r = 0; r < size(); ++r) {
        const ByteRange shard = shard_range(total, r, size());
        if (r == q || shard.end <= piece.begin || shard.begin >= piece.end) continue;
        need.begin = std::min(need.begin, std::max(shard.begin, piece.begin));
        need.end = std::max(need.end, std::min(shard.end, piece.end));
      }
      if (need.begin >= need.end) continue;
      if (q == rank()) snapshot(layout, need, staging);
      staging.resize(static_cast<std::size_t>(need.size()));
      comm_
          ->broadcast(host_view(staging.data(), DType::u8, staging.size()), q,
                      "ZeRO-1 optimizer state for a checkpoint shard")
          .wait();
      const std::int64_t begin = std::max(need.begin, range.begin);
      const std::int64_t end = std::min(need.end, range.end);
      if (q != rank() && begin < end) {
        std::memcpy(bytes.data() + (begin - range.begin), staging.data() + (begin - need.begin),
                    static_cast<std::size_t>(end - begin));
      }
    }
  }
}

void DataParallel::reduce_evaluation(EvalAccumulator& acc, double& nll_sum) {
  if (!comm_) return;
  std::vector<std::int64_t> tallies = acc.tallies();
  comm_->all_reduce(host_view(tallies.data(), DType::i64, tallies.size()), ReduceOp::sum).wait();
  auto nll = static_cast<float>(nll_sum);
  comm_->all_reduce(host_view(&nll, DType::f32, 1), ReduceOp::sum).wait();
  nll_sum = nll;
  std::vector<float> scores;
  std::vector<std::int32_t> labels;
  if (acc.keeps_scores()) {
    scores = gather_floats(*comm_, acc.scores());
    labels = gather_ints(*comm_, acc.labels());
  }
  acc.set_totals(tallies, std::move(scores), std::move(labels));
}

void DataParallel::reduce_evaluation(RegressionTally& tally, double& loss_sum) {
  if (!comm_) return;
  std::array<float, 4> sums{static_cast<float>(tally.squared), static_cast<float>(tally.absolute),
                            static_cast<float>(loss_sum), static_cast<float>(tally.hits)};
  comm_->all_reduce(host_view(sums.data(), DType::f32, sums.size()), ReduceOp::sum).wait();
  std::int64_t samples = tally.samples;
  comm_->all_reduce(host_view(&samples, DType::i64, 1), ReduceOp::sum).wait();
  tally.squared = sums[0];
  tally.absolute = sums[1];
  loss_sum = sums[2];
  tally.hits = sums[3];
  tally.samples = samples;
}

}  // namespace ruche
