#include "engine/train/data_parallel.h"

#include <algorithm>
#include <cstdio>

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
  comm.all_gather(host_view(&count, DType::i64, 1), host_view(counts.data(), DType::i64,
                                                               counts.size()))
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
    : comm_(comm && comm->size() > 1 ? comm : nullptr), net_(net), options_(options) {
  if (!comm_) return;
  std::vector<GradRange> tensors;
  for (const ParamEntry& e : net.param_table()) {
    if (!e.frozen) tensors.push_back({e.offset, e.offset + e.count});
  }
  reducer_ = std::make_unique<Reducer>(*comm_, net.grads(), tensors, options.reducer);
  net.set_grad_ready_hook([this](std::int64_t begin, std::int64_t end) {
    if (reduce_) reducer_->mark_ready(begin, end);
  });
  votes_ = Tensor::zeros(Shape{static_cast<std::int64_t>(StepVotes::count)}, DType::f32,
                         Device::cpu());
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
                                  << "'s parameters differ from rank 0's after step "
                                  << step << ": the replicas diverged (a bug in ruche)";
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
  comm_->all_gather(host_view(in.data(), DType::i64, in.size()),
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

StepVotes DataParallel::finish_step(const StepVotes& mine) {
  if (!comm_) return mine;
  std::copy(mine.v.begin(), mine.v.end(), votes_.data<float>());
  // Queued after the last bucket: the comm thread runs collectives in order.
  Work votes = comm_->all_reduce(BufferView::of(votes_), ReduceOp::sum, "the step's votes");
  reducer_->finish();
  if (timeline_) {
    for (std::size_t b = 0; b < reducer_->labels().size(); ++b) {
      const CollectiveTimes& t = reducer_->bucket_times()[b];
      if (t.finished == CollectiveTimes{}.finished) continue;  // NCCL: still on the stream
      timeline_->add(&reducer_->labels()[b], "allreduce", Timeline::comm, t.started, t.finished);
    }
  }
  buffers_work_.wait();
  votes.wait();
  StepVotes all;
  std::copy(votes_.data<float>(), votes_.data<float>() + StepVotes::count, all.v.begin());
  return all;
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

}  // namespace ruche
