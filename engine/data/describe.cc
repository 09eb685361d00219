#include "engine/data/describe.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <unordered_map>

#include "engine/data/index_shards.h"
#include "engine/data/preprocess.h"
#include "engine/data/shard_loader.h"
#include "engine/data/transform.h"
#include "engine/error.h"
#include "engine/metrics/json_writer.h"

namespace ruche {
namespace {

constexpr int kExamples = 5;

// What one pass over a split keeps of each sample.
struct SplitHashes {
  std::vector<std::uint64_t> exact;
  std::vector<PerceptualHash> near;
  std::vector<std::int32_t> labels;
};

// Per-channel sums for sources without a Dataset (shards): compute_normalization's formula.
struct ChannelSums {
  std::vector<double> sum, sq, count;
  void add(const float* x, const Shape& s) {
    const int channels = s.ndim() == 3 ? static_cast<int>(s[0]) : 1;
    const std::int64_t plane = s.numel() / channels;
    sum.resize(static_cast<std::size_t>(channels));
    sq.resize(sum.size());
    count.resize(sum.size());
    for (int c = 0; c < channels; ++c) {
      const auto ch = static_cast<std::size_t>(c);
      for (std::int64_t i = 0; i < plane; ++i) {
        const float v = x[c * plane + i];
        if (!std::isfinite(v)) continue;
        sum[ch] += v;
        sq[ch] += static_cast<double>(v) * v;
        count[ch] += 1;
      }
    }
  }
  Normalization result() const {
    Normalization n;
    for (std::size_t c = 0; c < sum.size(); ++c) {
      const double mean = count[c] > 0 ? sum[c] / count[c] : 0.0;
      const double var = count[c] > 0 ? std::max(sq[c] / count[c] - mean * mean, 0.0) : 0.0;
      n.mean.push_back(static_cast<float>(mean));
      n.std.push_back(static_cast<float>(var > 0 ? std::sqrt(var) : 1.0));
    }
    return n;
  }
};

SampleStream dataset_stream(const std::string& name, const DatasetPtr& d) {
  SampleStream s;
  s.name = name;
  s.size = d->size();
  s.read = [d](std::int64_t i, float* out) { d->read(i, out); };
  s.for_each = [d](const auto& visit) {
    std::vector<float> x(static_cast<std::size_t>(d->sample_numel()));
    for (std::int64_t i = 0; i < d->size(); ++i) {
      d->read(i, x.data());
      visit(i, x.data(), d->label(i));
    }
  };
  return s;
}

SampleStream shard_stream(const std::string& name, const ShardIndex& index) {
  ShardLoaderOptions o;
  o.batch_size = 64;
  o.train = false;  // the validation transform, in order, every sample once
  o.pad = false;
  o.threads = 2;
  for (int c = 0; c < 3; ++c) {  // pixels / 255: the values describe reports
    o.transform.mean[c] = 0.0f;
    o.transform.std[c] = 1.0f;
  }
  SampleStream s;
  s.name = name;
  auto loader = std::make_shared<ShardLoader>(index, name, 0, 1, o);
  s.size = loader->split_size();
  s.for_each = [loader, o](const auto& visit) {
    Tensor x = Tensor::empty(loader->batch_shape());
    Tensor y = Tensor::zeros({o.batch_size}, DType::i32);
    const std::int64_t numel = x.numel() / o.batch_size;
    loader->start_epoch(0);
    std::int64_t i = 0;
    for (std::int64_t n = loader->next(x, y); n > 0; n = loader->next(x, y)) {
      for (std::int64_t r = 0; r < n; ++r, ++i) {
        visit(i, x.data<float>() + r * numel, y.data<std::int32_t>()[r]);
      }
    }
  };
  return s;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string list(const std::vector<float>& v, int digits) {
  std::string s;
  for (float x : v) s += (s.empty() ? "" : ", ") + fixed(x, digits);
  return s;
}

void exact_check(const SplitHashes& a, const SplitHashes& b, DuplicateCheck& out) {
  std::unordered_map<std::uint64_t, std::int64_t> first;
  first.reserve(a.exact.size());
  for (std::size_t i = 0; i < a.exact.size(); ++i) {
    first.emplace(a.exact[i], static_cast<std::int64_t>(i));
  }
  for (std::size_t j = 0; j < b.exact.size(); ++j) {
    const auto it = first.find(b.exact[j]);
    if (it == first.end()) continue;
    ++out.samples;
    if (out.examples.size() < kExamples) out.examples.emplace_back(it->second, j);
  }
}

void exact_within(const SplitHashes& a, DuplicateCheck& out) {
  std::unordered_map<std::uint64_t, std::int64_t> first;
  first.reserve(a.exact.size());
  for (std::size_t i = 0; i < a.exact.size(); ++i) {
    const auto [it, fresh] = first.emplace(a.exact[i], static_cast<std::int64_t>(i));
    if (fresh) continue;
    ++out.samples;
    if (out.examples.size() < kExamples) out.examples.emplace_back(it->second, i);
  }
}

// Samples of b whose dHash is within `threshold` of one of a's (j's match among a's samples
// before j when `within`), not counting exact copies (equal exact hashes).
void near_check(const SplitHashes& a, const SplitHashes& b, bool within, int threshold,
                DuplicateCheck& out) {
  const auto nb = static_cast<std::int64_t>(b.near.size());
  std::vector<std::int64_t> match(static_cast<std::size_t>(nb), -1);
#pragma omp parallel for schedule(dynamic, 64)
  for (std::int64_t j = 0; j < nb; ++j) {
    const auto uj = static_cast<std::size_t>(j);
    const std::size_t end = within ? uj : a.near.size();
    for (std::size_t i = 0; i < end; ++i) {
      if (hash_distance(a.near[i], b.near[uj]) <= threshold && a.exact[i] != b.exact[uj]) {
        match[uj] = static_cast<std::int64_t>(i);
        break;
      }
    }
  }
  for (std::int64_t j = 0; j < nb; ++j) {
    const std::int64_t i = match[static_cast<std::size_t>(j)];
    if (i < 0) continue;
    ++out.samples;
    if (out.examples.size() < kExamples) out.examples.emplace_back(i, j);
  }
}

}  // namespace

std::uint64_t exact_hash(const float* sample, std::int64_t numel) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  const auto* p = reinterpret_cast<const unsigned char*>(sample);
  for (std::size_t i = 0; i < static_cast<std::size_t>(numel) * sizeof(float); ++i) {
    h = (h ^ p[i]) * 0x100000001b3ull;
  }
  return h;
}

int hash_distance(const PerceptualHash& a, const PerceptualHash& b) {
  return std::popcount(a[0] ^ b[0]) + std::popcount(a[1] ^ b[1]) + std::popcount(a[2] ^ b[2]) +
         std::popcount(a[3] ^ b[3]);
}

PerceptualHash perceptual_hash(const float* sample, const Shape& shape) {
  RUCHE_CHECK(shape.ndim() == 3) << "perceptual_hash of a sample of shape " << shape.str();
  const std::int64_t c = shape[0], h = shape[1], w = shape[2];
  constexpr int kW = 17, kH = 16;
  double cell[kH][kW] = {};
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  // Area resampling: each cell is the mean of the source area it covers (partial pixels weighed).
  for (int cy = 0; cy < kH; ++cy) {
    const double y0 = static_cast<double>(cy) * h / kH, y1 = static_cast<double>(cy + 1) * h / kH;
    for (int cx = 0; cx < kW; ++cx) {
      const double x0 = static_cast<double>(cx) * w / kW;
      const double x1 = static_cast<double>(cx + 1) * w / kW;
      double total = 0;
      for (auto y = static_cast<std::int64_t>(y0); y < h && static_cast<double>(y) < y1; ++y) {
        const double wy = std::min<double>(y + 1, y1) - std::max<double>(y, y0);
        for (auto x = static_cast<std::int64_t>(x0); x < w && static_cast<double>(x) < x1; ++x) {
          const double wx = std::min<double>(x + 1, x1) - std::max<double>(x, x0);
          double v = 0;
          for (std::int64_t ch = 0; ch < c; ++ch) {
            const float s = sample[(ch * h + y) * w + x];
            v += std::isfinite(s) ? s : 0.0;
          }
          total += wy * wx * v;
        }
      }
      cell[cy][cx] = total / ((y1 - y0) * (x1 - x0) * static_cast<double>(c));
      lo = std::min(lo, cell[cy][cx]);
      hi = std::max(hi, cell[cy][cx]);
    }
  }
  const double tolerance = 0.05 * (hi - lo);
  PerceptualHash bits{};
  int k = 0;
  for (int cy = 0; cy < kH; ++cy) {
    for (int cx = 0; cx < kW - 1; ++cx, ++k) {
      if (cell[cy][cx] - cell[cy][cx + 1] > tolerance) bits[k / 64] |= std::uint64_t{1} << (k % 64);
    }
  }
  return bits;
}

std::vector<SampleStream> describe_streams(const DataSpec& spec, const DescribeOptions& options,
                                           DataDescription& out) {
  std::vector<SampleStream> streams;
  out.data = spec.data.empty() ? spec.default_dir : spec.data;
  if (!spec.data.empty() && names_shards(spec.data)) {
    ShardSetOptions set;
    set.log = stderr;
    const ShardIndex index = open_shard_set(spec.data, spec.val_data, set);
    out.kind = "shards";
    out.class_names = index.classes;
    out.pixels = true;
    const int crop = ImageTransformOptions{}.crop;
    out.sample_shape = Shape{3, crop, crop};
    for (const char* split : {"train", "val", "test"}) {
      if (!index.split(split).empty()) streams.push_back(shard_stream(split, index));
    }
    return streams;
  }
  DataSpec raw = spec;
  for (int c = 0; c < 3; ++c) {  // ImageFolder decodes to pixels / 255, unnormalised
    raw.image.mean[c] = 0.0f;
    raw.image.std[c] = 1.0f;
  }
  const DataSplits splits = open_splits(raw, options.val_fraction, options.seed);
  const Dataset& train = *splits.train;
  out.kind = train.kind();
  out.class_names = train.class_names();
  out.sample_shape = train.sample_shape();
  const InputFacts facts = input_facts(train);
  out.pixels = facts.pixels;
  // The statistics of the run's input record: the same function, the same samples.
  const Normalization measured = compute_normalization(train, options.stats_samples);
  out.mean = measured.mean;
  out.std = measured.std;
  const Normalization chosen =
      choose_normalization(NormalizeChoice{}, facts, train.transforms_itself() ? nullptr : &train);
  out.auto_mean = chosen.mean;
  out.auto_std = chosen.std;
  streams.push_back(dataset_stream("train", splits.train));
  if (splits.val) streams.push_back(dataset_stream("val", splits.val));
  if (splits.test) streams.push_back(dataset_stream("test", splits.test));
  return streams;
}

DataDescription describe_data(const DataSpec& spec, const DescribeOptions& options) {
  DataDescription d;
  d.near_threshold = options.near_threshold;
  const std::vector<SampleStream> streams = describe_streams(spec, options, d);
  RUCHE_REQUIRE(!streams.empty() && streams[0].name == "train")
      << d.data << ": no training samples to describe";
  const int classes = static_cast<int>(d.class_names.size());
  const bool image = d.sample_shape.ndim() == 3;
  const std::int64_t numel = d.sample_shape.numel();
  const int per_class = std::max(options.samples_per_class, 0);
  std::vector<std::vector<float>> grid(static_cast<std::size_t>(classes));
  std::vector<int> grid_count(static_cast<std::size_t>(classes), 0);
  std::vector<SplitHashes> hashes(streams.size());
  ChannelSums sums;
  const bool sums_needed = d.mean.empty();  // shards: no Dataset for compute_normalization
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool pixel_steps = true;
  for (std::size_t s = 0; s < streams.size(); ++s) {
    const SampleStream& st = streams[s];
    SplitHashes& h = hashes[s];
    SplitFacts facts;
    facts.name = st.name;
    facts.class_counts.assign(static_cast<std::size_t>(classes), 0);
    const bool is_train = s == 0;
    st.for_each([&](std::int64_t i, const float* x, std::int32_t label) {
      (void)i;
      RUCHE_REQUIRE(label >= 0 && label < classes)
          << d.data << ": " << st.name << " sample " << i << " has label " << label << " of "
          << classes << " classes";
      ++facts.class_counts[static_cast<std::size_t>(label)];
      h.labels.push_back(label);
      h.exact.push_back(exact_hash(x, numel));
      h.near.push_back(image ? perceptual_hash(x, d.sample_shape) : PerceptualHash{});
      if (!is_train) return;
      for (std::int64_t k = 0; k < numel; ++k) {
        // uint8 stored (an npz's): every value is a pixel / 255, as the reader divides
        pixel_steps = pixel_steps && x[k] >= 0 && x[k] <= 1 &&
                      static_cast<float>(std::lround(x[k] * 255.0f)) / 255.0f == x[k];
        if (!std::isfinite(x[k])) continue;
        lo = std::min<double>(lo, x[k]);
        hi = std::max<double>(hi, x[k]);
      }
      if (sums_needed && static_cast<std::int64_t>(h.exact.size()) <= options.stats_samples) {
        sums.add(x, d.sample_shape);
      }
      const auto c = static_cast<std::size_t>(label);
      if (grid_count[c] < per_class) {
        grid[c].insert(grid[c].end(), x, x + numel);
        ++grid_count[c];
      }
    });
    facts.size = static_cast<std::int64_t>(h.exact.size());
    const auto [mn, mx] = std::minmax_element(facts.class_counts.begin(), facts.class_counts.end());
    facts.imbalance = classes == 0 ? 0
                      : *mn == 0   ? std::numeric_limits<double>::infinity()
                                   : static_cast<double>(*mx) / static_cast<double>(*mn);
    d.splits.push_back(std::move(facts));
  }
  if (sums_needed) {
    const Normalization n = sums.result();
    d.mean = n.mean;
    d.std = n.std;
    d.auto_mean = {0.485f, 0.456f, 0.406f};  // JPEG sources: ImageNet's, as --normalize auto
    d.auto_std = {0.229f, 0.224f, 0.225f};
  }
  if (!d.pixels && pixel_steps && d.kind == "npz") d.pixels = true;  // a uint8 npz
  const double unit = d.pixels ? 255.0 : 1.0;
  d.min = std::isfinite(lo) ? lo * unit : 0;
  d.max = std::isfinite(hi) ? hi * unit : 0;
  if (d.pixels) {
    d.min = std::round(d.min);
    d.max = std::round(d.max);
  }

  // The balancing flags: only the training split is balanced by them.
  const double ratio = d.splits[0].imbalance;
  if (ratio > options.imbalance_flag_ratio) {
    d.suggested_flags = {"--class-weights auto", "--balance over"};
    if (!image) d.suggested_flags.emplace_back("--smote 5");
    d.balance_note = "imbalanced (largest / smallest class " + fixed(ratio, 2) + " > " +
                     fixed(options.imbalance_flag_ratio, 1) + ")";
  } else {
    d.balance_note = "balanced enough (largest / smallest class " + fixed(ratio, 2) +
                     " <= " + fixed(options.imbalance_flag_ratio, 1) +
                     "): no balancing flag needed";
  }

  // Leakage: every later split against train, and train against itself.
  const SplitHashes& train = hashes[0];
  const double n_train = static_cast<double>(train.near.size());
  for (std::size_t s = 0; s < streams.size(); ++s) {
    const bool within = s == 0;
    DuplicateCheck exact;
    exact.a = "train";
    exact.b = streams[s].name;
    if (within) {
      exact_within(train, exact);
    } else {
      exact_check(train, hashes[s], exact);
    }
    d.duplicates.push_back(exact);
    DuplicateCheck near = exact;
    near.exact = false;
    near.samples = 0;
    near.examples.clear();
    const double pairs =
        within ? n_train * (n_train - 1) / 2 : n_train * static_cast<double>(hashes[s].near.size());
    if (!image) {
      near.skipped = true;
      near.why_skipped = "vector samples have no image hash";
    } else if (pairs > options.max_pairs) {
      near.skipped = true;
      near.why_skipped = fixed(pairs, 0) + " pairs > --max-pairs " + fixed(options.max_pairs, 0);
    } else {
      near_check(train, hashes[s], within, options.near_threshold, near);
    }
    d.duplicates.push_back(near);
  }

  // Example pairs, read again (indexable sources only).
  std::vector<float> pa, pb;
  for (std::size_t k = 0; k < d.duplicates.size(); ++k) {
    const DuplicateCheck& c = d.duplicates[k];
    const std::size_t s = k / 2;  // two checks (exact, near) per split, in stream order
    if (c.skipped || c.examples.empty() || !streams[0].read || !streams[s].read) continue;
    for (std::size_t e = 0; e < std::min<std::size_t>(c.examples.size(), 4); ++e) {
      pa.resize(pa.size() + static_cast<std::size_t>(numel));
      pb.resize(pb.size() + static_cast<std::size_t>(numel));
      streams[0].read(c.examples[e].first, pa.data() + pa.size() - numel);
      streams[s].read(c.examples[e].second, pb.data() + pb.size() - numel);
      d.pair_check.push_back(static_cast<std::int32_t>(k));
    }
  }
  if (!d.pair_check.empty()) {
    Shape pshape{static_cast<std::int64_t>(d.pair_check.size())};
    for (std::int64_t dim : d.sample_shape) pshape.push_back(dim);
    d.pair_a = Tensor::from_vector(pa, pshape);
    d.pair_b = Tensor::from_vector(pb, pshape);
  }

  // The grid, class-major.
  std::int64_t rows = 0;
  for (int n : grid_count) rows += n;
  Shape gshape{rows};
  for (std::int64_t dim : d.sample_shape) gshape.push_back(dim);
  d.grid = Tensor::empty(gshape);
  float* g = d.grid.data<float>();
  for (int c = 0; c < classes; ++c) {
    const auto& v = grid[static_cast<std::size_t>(c)];
    g = std::copy(v.begin(), v.end(), g);
    for (int k = 0; k < grid_count[static_cast<std::size_t>(c)]; ++k) d.grid_labels.push_back(c);
  }
  return d;
}

std::string render_description(const DataDescription& d) {
  std::ostringstream o;
  o << "data: " << d.data << " (" << d.kind << "), " << d.class_names.size() << " classes, samples "
    << d.sample_shape.str() << ", "
    << (d.pixels ? "uint8 pixels (read as / 255)" : "float32 values") << "\n";
  o << "range: " << (d.pixels ? fixed(d.min, 0) : fixed(d.min, 4)) << " to "
    << (d.pixels ? fixed(d.max, 0) : fixed(d.max, 4)) << " (training split)\n";
  o << "per-channel mean " << list(d.mean, 4) << ", std " << list(d.std, 4)
    << (d.pixels ? " (pixels / 255)" : "") << "; --normalize auto records mean "
    << (d.auto_mean.empty() ? "none" : list(d.auto_mean, 4)) << ", std "
    << (d.auto_std.empty() ? "none" : list(d.auto_std, 4)) << "\n";
  o << "splits:";
  for (const SplitFacts& s : d.splits) o << " " << s.name << " " << s.size;
  o << "\n";
  std::size_t width = 5;
  for (const auto& n : d.class_names) width = std::max(width, n.size());
  char line[256];
  std::snprintf(line, sizeof line, "  %-*s", static_cast<int>(width + 6), "class");
  o << line;
  for (const SplitFacts& s : d.splits) {
    std::snprintf(line, sizeof line, " %9s", s.name.c_str());
    o << line;
  }
  o << "\n";
  for (std::size_t c = 0; c < d.class_names.size(); ++c) {
    std::snprintf(line, sizeof line, "  %3zu %-*s", c, static_cast<int>(width + 2),
                  d.class_names[c].c_str());
    o << line;
    for (const SplitFacts& s : d.splits) {
      std::snprintf(line, sizeof line, " %9lld", static_cast<long long>(s.class_counts[c]));
      o << line;
    }
    o << "\n";
  }
  o << "imbalance:";
  for (const SplitFacts& s : d.splits) o << " " << s.name << " " << fixed(s.imbalance, 2);
  o << "; train " << d.balance_note;
  if (!d.suggested_flags.empty()) {
    o << "; suggested:";
    for (const auto& f : d.suggested_flags) o << " " << f;
    o << " (one of them)";
  }
  o << "\n";
  o << "leakage (exact: 64-bit hash of the decoded sample; near: 256-bit dHash within Hamming "
    << "distance " << d.near_threshold << ", exact copies not counted again):\n";
  for (const DuplicateCheck& c : d.duplicates) {
    const bool within = c.a == c.b;
    o << "  " << (c.exact ? "exact" : "near ") << "  "
      << (within ? c.a + " within itself" : c.a + " / " + c.b) << ": ";
    if (c.skipped) {
      o << "not checked (" << c.why_skipped << ")\n";
      continue;
    }
    if (c.samples == 0) {
      o << "none\n";
      continue;
    }
    o << c.samples << " " << c.b << " sample" << (c.samples == 1 ? "" : "s")
      << (within ? " repeat an earlier one" : " also in " + c.a) << ", e.g.";
    for (const auto& [i, j] : c.examples) {
      o << " " << c.a << "[" << i << "]=" << c.b << "[" << j << "]";
    }
    o << "\n";
  }
  return o.str();
}

std::string description_json(const DataDescription& d) {
  JsonWriter w;
  w.begin_object();
  w.key("data").value(d.data).key("kind").value(d.kind);
  w.key("sample_shape").begin_array();
  for (std::int64_t s : d.sample_shape) w.value(s);
  w.end_array();
  w.key("dtype").value(d.pixels ? "uint8" : "float32");
  w.key("min").value(d.min).key("max").value(d.max);
  w.key("class_names").begin_array();
  for (const auto& n : d.class_names) w.value(n);
  w.end_array();
  const auto floats = [&w](const char* key, const std::vector<float>& v) {
    w.key(key).begin_array();
    for (float x : v) w.value(x);
    w.end_array();
  };
  floats("mean", d.mean);
  floats("std", d.std);
  floats("auto_mean", d.auto_mean);
  floats("auto_std", d.auto_std);
  w.key("splits").begin_object();
  for (const SplitFacts& s : d.splits) {
    w.key(s.name).begin_object().key("size").value(s.size).key("class_counts").begin_array();
    for (std::int64_t c : s.class_counts) w.value(c);
    w.end_array().key("imbalance").value(s.imbalance).end_object();
  }
  w.end_object();
  w.key("suggested_flags").begin_array();
  for (const auto& f : d.suggested_flags) w.value(f);
  w.end_array();
  w.key("near_threshold").value(d.near_threshold);
  w.key("duplicates").begin_array();
  for (const DuplicateCheck& c : d.duplicates) {
    w.begin_object().key("kind").value(c.exact ? "exact" : "near").key("a").value(c.a);
    w.key("b").value(c.b).key("checked").value(!c.skipped);
    if (c.skipped) w.key("why_not").value(c.why_skipped);
    w.key("samples").value(c.samples).key("examples").begin_array();
    for (const auto& [i, j] : c.examples) w.begin_array().value(i).value(j).end_array();
    w.end_array().end_object();
  }
  w.end_array();
  w.key("grid_labels").begin_array();
  for (std::int32_t l : d.grid_labels) w.value(static_cast<int>(l));
  w.end_array();
  w.end_object();
  return w.str() + "\n";
}

}  // namespace ruche
