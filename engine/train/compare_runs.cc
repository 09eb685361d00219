#include "engine/train/compare_runs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "engine/metrics/json_writer.h"
#include "engine/tensor/npz.h"

namespace ruche {
namespace fs = std::filesystem;
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

double count_params(const std::string& dir) {
  for (const char* name : {"model.npz", "best.npz"}) {
    const fs::path p = fs::path(dir) / name;
    if (!fs::is_regular_file(p)) continue;
    double n = 0;
    for (const auto& [key, t] : load_npz(p.string())) {
      if (ends_with(key, "running_mean") || ends_with(key, "running_var") ||
          ends_with(key, "num_batches_tracked")) {
        continue;  // buffers, not parameters
      }
      n += static_cast<double>(t.numel());
    }
    return n;
  }
  return std::nan("");
}

std::string cell(double mean, double std, bool seeded, const char* format) {
  if (std::isnan(mean)) return "-";
  char a[64], b[64];
  std::snprintf(a, sizeof a, format, mean);
  if (!seeded) return a;
  std::snprintf(b, sizeof b, format, std);
  return std::string(a) + " ± " + b;
}

}  // namespace

double MetricsRecord::get(const std::string& key) const {
  const auto it = values.find(key);
  return it == values.end() ? std::nan("") : it->second;
}

MetricsRecord parse_metrics_line(const std::string& line, const std::string& where) {
  MetricsRecord r;
  std::size_t i = 0;
  const auto skip = [&] {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  };
  const auto fail = [&](const char* what) {
    RUCHE_FAIL() << where << ": not a flat JSON object (" << what << " at column " << i + 1 << ")";
  };
  const auto string = [&] {
    if (i >= line.size() || line[i] != '"') fail("expected a string");
    std::string s;
    for (++i; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) ++i;
      s += line[i];
    }
    if (i >= line.size()) fail("an unterminated string");
    ++i;
    return s;
  };
  skip();
  if (i >= line.size() || line[i] != '{') fail("expected '{'");
  ++i;
  skip();
  if (i < line.size() && line[i] == '}') return r;
  while (true) {
    skip();
    const std::string key = string();
    skip();
    if (i >= line.size() || line[i] != ':') fail("expected ':'");
    ++i;
    skip();
    if (i < line.size() && line[i] == '"') {
      const std::string v = string();
      if (key == "split") r.split = v;
    } else {
      const std::size_t start = i;
      while (i < line.size() && line[i] != ',' && line[i] != '}') ++i;
      std::string token = line.substr(start, i - start);
      while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
        token.pop_back();
      }
      if (token == "null") {
        r.values[key] = std::nan("");
      } else if (token == "true" || token == "false") {
        r.values[key] = token == "true" ? 1 : 0;
      } else {
        char* end = nullptr;
        const double v = std::strtod(token.c_str(), &end);
        if (token.empty() || *end != '\0') fail("expected a number");
        r.values[key] = v;
      }
    }
    skip();
    if (i < line.size() && line[i] == ',') {
      ++i;
      continue;
    }
    if (i < line.size() && line[i] == '}') break;
    fail("expected ',' or '}'");
  }
  return r;
}

RunSummary summarize_run(const std::string& dir) {
  RunSummary s;
  s.dir = dir;
  const fs::path path = fs::path(dir) / "metrics.jsonl";
  std::ifstream f(path);
  RUCHE_REQUIRE(f.good()) << dir << ": no metrics.jsonl (is it a ruche run directory?)";
  std::string line;
  int number = 0;
  std::vector<double> speeds;
  while (std::getline(f, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const MetricsRecord r = parse_metrics_line(line, path.string() + ":" + std::to_string(number));
    const double time = r.get("time_s");
    if (!std::isnan(time)) s.wall_s = std::isnan(s.wall_s) ? time : std::max(s.wall_s, time);
    const double epoch = r.get("epoch");
    if (!std::isnan(epoch)) s.epochs = std::isnan(s.epochs) ? epoch : std::max(s.epochs, epoch);
    if (r.split == "train") {
      const double v = r.get("img_per_s");
      if (std::isfinite(v)) speeds.push_back(v);
    } else if (r.split == "val") {
      const double acc = r.get("acc");
      if (std::isfinite(acc) && (std::isnan(s.best_val_acc) || acc > s.best_val_acc)) {
        s.best_val_acc = acc;
        s.best_val_loss = r.get("loss");
        s.epochs_to_best = epoch;
      }
    } else if (r.split == "test") {
      s.test_acc = r.get("acc");
    }
  }
  if (!speeds.empty()) {
    std::sort(speeds.begin(), speeds.end());
    const std::size_t n = speeds.size();
    s.img_per_s = n % 2 ? speeds[n / 2] : (speeds[n / 2 - 1] + speeds[n / 2]) / 2;
  }
  s.params = count_params(dir);
  return s;
}

std::vector<double> ConfigSummary::values(double RunSummary::*field) const {
  std::vector<double> v;
  for (const RunSummary& r : runs) {
    if (std::isfinite(r.*field)) v.push_back(r.*field);
  }
  return v;
}

ConfigSummary summarize_config(const std::string& dir) {
  ConfigSummary c;
  c.dir = dir;
  fs::path p(dir);
  c.name = (p.has_filename() ? p.filename() : p.parent_path().filename()).string();
  RUCHE_REQUIRE(fs::is_directory(p)) << dir << ": not a directory";
  if (fs::is_regular_file(p / "metrics.jsonl")) {
    c.runs.push_back(summarize_run(dir));
    return c;
  }
  std::vector<std::pair<long, std::string>> seeds;
  for (const auto& e : fs::directory_iterator(p)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("seed-", 0) != 0) continue;
    char* end = nullptr;
    const long n = std::strtol(name.c_str() + 5, &end, 10);
    if (*end != '\0' || !fs::is_regular_file(e.path() / "metrics.jsonl")) continue;
    seeds.emplace_back(n, e.path().string());
  }
  RUCHE_REQUIRE(!seeds.empty()) << dir << ": neither a run directory (metrics.jsonl) nor a "
                                << "directory of seeds (seed-1/metrics.jsonl, ... as ruche train "
                                << "--seeds writes)";
  std::sort(seeds.begin(), seeds.end());
  c.seeded = true;
  for (const auto& [n, d] : seeds) c.runs.push_back(summarize_run(d));
  return c;
}

Comparison compare_runs(const std::vector<std::string>& dirs) {
  RUCHE_REQUIRE(!dirs.empty()) << "compare: give at least one run directory";
  Comparison c;
  for (const auto& d : dirs) c.configs.push_back(summarize_config(d));
  for (std::size_t a = 0; a < c.configs.size(); ++a) {
    for (std::size_t b = a + 1; b < c.configs.size(); ++b) {
      const auto va = c.configs[a].values(&RunSummary::best_val_acc);
      const auto vb = c.configs[b].values(&RunSummary::best_val_acc);
      if (va.size() < 2 || vb.size() < 2) continue;
      c.pairs.push_back({a, b, welch_t_test(va, vb)});
    }
  }
  return c;
}

namespace {

struct Column {
  const char* title;
  double RunSummary::*field;
  const char* format;
  double scale;
};
const Column kColumns[] = {
    {"params", &RunSummary::params, "%.0f", 1},
    {"best val acc %", &RunSummary::best_val_acc, "%.2f", 100},
    {"val loss", &RunSummary::best_val_loss, "%.4f", 1},
    {"test acc %", &RunSummary::test_acc, "%.2f", 100},
    {"epochs to best", &RunSummary::epochs_to_best, "%.1f", 1},
    {"wall s", &RunSummary::wall_s, "%.1f", 1},
    {"img/s", &RunSummary::img_per_s, "%.0f", 1},
};

}  // namespace

std::string render_comparison(const Comparison& c) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head{"run", "seeds"};
  for (const Column& col : kColumns) head.emplace_back(col.title);
  rows.push_back(head);
  for (const ConfigSummary& cfg : c.configs) {
    std::vector<std::string> row{cfg.name, cfg.seeded ? std::to_string(cfg.runs.size()) : "-"};
    for (const Column& col : kColumns) {
      std::vector<double> v = cfg.values(col.field);
      for (double& x : v) x *= col.scale;
      row.push_back(v.empty() ? "-" : cell(mean_of(v), sample_std(v), cfg.seeded, col.format));
    }
    rows.push_back(row);
  }
  std::vector<std::size_t> width(head.size(), 0);
  const auto display = [](const std::string& s) {  // "±" is two bytes, one column
    std::size_t n = 0;
    for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
    return n;
  };
  for (const auto& row : rows) {
    for (std::size_t k = 0; k < row.size(); ++k) width[k] = std::max(width[k], display(row[k]));
  }
  std::ostringstream o;
  for (const auto& row : rows) {
    for (std::size_t k = 0; k < row.size(); ++k) {
      const std::string pad(width[k] - display(row[k]), ' ');
      o << (k == 0 ? "" : "  ") << (k == 0 ? row[k] + pad : pad + row[k]);
    }
    o << "\n";
  }
  bool seeded = false;
  for (const auto& cfg : c.configs) seeded = seeded || cfg.seeded;
  if (seeded) o << "seeded runs: mean ± sample standard deviation over the seeds\n";
  for (const auto& p : c.pairs) {
    const auto& a = c.configs[p.a];
    const auto& b = c.configs[p.b];
    char line[512];
    std::snprintf(line, sizeof line,
                  "%s vs %s, best val accuracy: Welch's t = %.3f, df = %.2f, p = %.4f: %s\n",
                  a.name.c_str(), b.name.c_str(), p.test.t, p.test.df, p.test.p,
                  p.test.p < 0.05
                      ? "distinguishable at 95%"
                      : "not distinguishable at 95% (the seeds' spread covers the gap)");
    o << line;
  }
  return o.str();
}

std::string comparison_json(const Comparison& c) {
  JsonWriter w;
  w.begin_object().key("configs").begin_array();
  for (const ConfigSummary& cfg : c.configs) {
    w.begin_object().key("name").value(cfg.name).key("dir").value(cfg.dir);
    w.key("seeded").value(cfg.seeded).key("runs").begin_array();
    for (const RunSummary& r : cfg.runs) {
      w.begin_object().key("dir").value(r.dir);
      w.key("params").value(r.params).key("best_val_acc").value(r.best_val_acc);
      w.key("best_val_loss").value(r.best_val_loss).key("test_acc").value(r.test_acc);
      w.key("epochs_to_best").value(r.epochs_to_best).key("epochs").value(r.epochs);
      w.key("wall_s").value(r.wall_s).key("img_per_s").value(r.img_per_s);
      w.end_object();
    }
    w.end_array();
    const auto v = cfg.values(&RunSummary::best_val_acc);
    w.key("best_val_acc_mean").value(mean_of(v)).key("best_val_acc_std").value(sample_std(v));
    w.end_object();
  }
  w.end_array().key("pairs").begin_array();
  for (const auto& p : c.pairs) {
    w.begin_object().key("a").value(c.configs[p.a].name).key("b").value(c.configs[p.b].name);
    w.key("t").value(p.test.t).key("df").value(p.test.df).key("p").value(p.test.p);
    w.key("distinguishable").value(p.test.p < 0.05).end_object();
  }
  w.end_array().end_object();
  return w.str() + "\n";
}

}  // namespace ruche
