// allreduce_bench: bus bandwidth of ruche's MpiCommunicator::all_reduce against raw MPI_Allreduce,
// in the same run, f32 sum in place, 1 KiB to 256 MiB (docs/ARCHITECTURE.md, Benchmarks).
//
//   mpirun -np 2 build/allreduce_bench --out benchmarks/results     (benchmarks/run_all.sh)
//
// nccl-tests' definitions: algbw = bytes / time, busbw = algbw * 2(n-1)/n for all-reduce, so
// busbw is comparable across rank counts. GB/s are 1e9 bytes per second, as there.
// Goal: ruche >= 95% of MPI's busbw from 1 MiB up; below that latency rules, so the table gives
// both latencies and their difference (the comm thread's fixed cost per call).
//
// Sides, in a fixed cycle every round (A B C D E, A B C D E, ...) so drift hits all alike:
//   mpi        MPI_Allreduce on this thread: the baseline
//   ruche      comm.all_reduce(view, sum).wait(): what the Reducer pays per bucket
//   mpi_nb     MPI_Iallreduce + MPI_Wait: the nonblocking algorithm ruche posts, spun on
//   mpi_poll   MPI_Iallreduce + ruche's yield/sleep polling, on this thread (no comm thread)
//   ruche_avg  comm.all_reduce(view, avg).wait(): sum plus the division pass
//   mpi_barrier  MPI_Ibarrier polled as ruche polls, then MPI_Allreduce: ruche's path for
//              256 KiB and more without the comm thread (ruche - mpi_barrier: the hand-off)
// --sides picks some of them (mpi and ruche always), e.g. --sides mpi,ruche for a focused A/B.
// The last three split ruche's gap to MPI into algorithm (mpi -> mpi_nb), polling
// (mpi_nb -> mpi_poll) and thread hand-off (mpi_poll -> ruche). Each sample is the mean time per
// call over a round's iterations, the slowest rank's; we report median (min-max) over rounds.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "comm/communicator.h"
#include "comm/mpi/mpi_communicator.h"
#include "comm/mpi/raw_allreduce.h"
#include "comm/world.h"

using namespace ruche;

namespace {

// ------------------------------------------------------------------ what is measured

const std::vector<std::string> kAllSides = {"mpi",      "ruche",     "mpi_nb",
                                            "mpi_poll", "ruche_avg", "mpi_barrier"};
std::vector<std::string> kSides = kAllSides;  // --sides: those cycled in this run

const char* side_description(const std::string& side) {
  if (side == "mpi") return "MPI_Allreduce (blocking, caller's thread)";
  if (side == "ruche") return "ruche MpiCommunicator all_reduce sum + wait (comm thread)";
  if (side == "mpi_nb") return "MPI_Iallreduce + MPI_Wait (caller's thread)";
  if (side == "mpi_poll") return "MPI_Iallreduce + ruche's backoff MPI_Test loop (caller's thread)";
  if (side == "ruche_avg") return "ruche MpiCommunicator all_reduce avg + wait (sum, then / n)";
  if (side == "mpi_barrier")
    return "MPI_Ibarrier + ruche's backoff MPI_Test loop, then MPI_Allreduce (caller's thread)";
  return "?";
}

// Seconds per call of `iterations` all-reduces of data[0, count) by one side, slowest rank's.
double time_side(const std::string& side, const World& world, Communicator& comm, float* data,
                 std::int64_t count, int iterations) {
  if (side == "mpi") return raw_mpi_allreduce_seconds(world, data, count, iterations);
  if (side == "mpi_nb")
    return raw_mpi_allreduce_seconds(world, data, count, iterations, RawMode::nonblocking);
  if (side == "mpi_poll")
    return raw_mpi_allreduce_seconds(world, data, count, iterations, RawMode::backoff_poll);
  if (side == "mpi_barrier")
    return raw_mpi_allreduce_seconds(world, data, count, iterations, RawMode::barrier_blocking);
  const ReduceOp op = side == "ruche_avg" ? ReduceOp::avg : ReduceOp::sum;
  BufferView view{data, DType::f32, count, Device::cpu()};
  comm.barrier().wait();  // start together, as the raw side does with MPI_Barrier
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) comm.all_reduce(view, op).wait();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iterations;
  // Every Work is waited, so the comm thread is idle: this thread may call MPI (raw_allreduce.h).
  return max_over_ranks(world, seconds);
}

// Each rank holds rank + 1 everywhere; after one sum every element is n(n+1)/2 (exact in f32),
// after one avg (n+1)/2. A wrong answer would make every figure below meaningless.
void check_side(const std::string& side, const World& world, Communicator& comm, float* data,
                std::int64_t count) {
  std::fill(data, data + count, static_cast<float>(world.rank() + 1));
  time_side(side, world, comm, data, count, 1);
  const float n = static_cast<float>(world.size());
  const float want = side == "ruche_avg" ? (n + 1) / 2 : n * (n + 1) / 2;
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < count; ++i) bad += data[i] != want;
  if (max_over_ranks(world, static_cast<double>(bad)) > 0) {
    std::fprintf(stderr, "allreduce_bench: rank %d: %s over %lld floats: %lld wrong values\n",
                 world.rank(), side.c_str(), static_cast<long long>(count),
                 static_cast<long long>(bad));
    world.abort(1);
  }
}

// Calls per round: about `round_bytes` of data per side and round (steady figures for big
// buffers), between `min_iters` and `max_iters` (enough calls to average out small ones' jitter).
int iterations_for(std::int64_t bytes, std::int64_t round_bytes, int min_iters, int max_iters) {
  const std::int64_t n = round_bytes / std::max<std::int64_t>(bytes, 1);
  return static_cast<int>(std::clamp<std::int64_t>(n, min_iters, max_iters));
}

struct Stats {
  std::vector<double> seconds;  // one per round
  double median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    const std::size_t m = s.size() / 2;
    return s.size() % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }
  double min() const { return *std::min_element(seconds.begin(), seconds.end()); }
  double max() const { return *std::max_element(seconds.begin(), seconds.end()); }
};

// Per-round ratios a[i] / b[i] (the same round's samples): their spread is the ratio's.
Stats round_ratios(const Stats& a, const Stats& b) {
  Stats r;
  for (std::size_t i = 0; i < a.seconds.size() && i < b.seconds.size(); ++i)
    r.seconds.push_back(a.seconds[i] / b.seconds[i]);
  return r;
}

struct Row {
  std::int64_t bytes = 0;
  int iterations = 0;
  std::map<std::string, Stats> sides;
};

// nccl-tests: algbw = bytes / time; all-reduce busbw = algbw * 2(n-1)/n. In GB/s (1e9).
double busbw_gbs(std::int64_t bytes, double seconds, int ranks) {
  const double algbw = static_cast<double>(bytes) / seconds / 1e9;
  return algbw * 2.0 * (ranks - 1) / ranks;
}

// ------------------------------------------------------------------ the machine

std::string first_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    std::string value = line.substr(line.find(':') + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
  }
  return "unknown";
}

std::string read_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string shell_line(const std::string& command) {
  std::string out;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, pipe)) out += buf;
    pclose(pipe);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

struct Machine {
  std::string host, cpu, mpi, ruche, yield_when_idle, load_before, load_after;
  unsigned cores = 0;
  double memory_gib = 0;
};

Machine describe_machine(const World& world) {
  Machine m;
  m.host = world.host_name();
  m.cpu = first_field("/proc/cpuinfo", "model name");
  m.cores = std::thread::hardware_concurrency();
  m.memory_gib = std::stod(first_field("/proc/meminfo", "MemTotal")) / (1 << 20);
  m.mpi = mpi_library_version();
  const std::string commit =
      shell_line("git -C " RUCHE_SOURCE_DIR " rev-parse --short HEAD 2>/dev/null");
  // comm/ is what is measured: say so when it differs from the commit.
  const bool dirty = !commit.empty() &&
                     !shell_line("git -C " RUCHE_SOURCE_DIR " status --porcelain -- comm").empty();
  m.ruche = std::string("ruche ") + RUCHE_VERSION +
            (commit.empty() ? "" : " (" + commit + (dirty ? ", comm/ modified" : "") + ")");
  // Open MPI's waiting policy decides how a busy-polling MPI_Allreduce fares on shared cores.
  const char* yield = std::getenv("OMPI_MCA_mpi_yield_when_idle");
  m.yield_when_idle = yield ? yield : "unset (Open MPI default)";
  m.load_before = read_line("/proc/loadavg");
  return m;
}

// ------------------------------------------------------------------ results

std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

std::string size_name(std::int64_t bytes) {
  if (bytes >= (1 << 20)) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1 << 10)) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " B";
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);  // the reentrant one: the comm thread runs beside this
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &local);
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string markdown(const std::vector<Row>& rows, const Machine& m, int ranks, int rounds,
                     std::int64_t goal_bytes, const std::string& command, double wall_s) {
  std::ostringstream md;
  md << "# all-reduce: ruche's MpiCommunicator vs raw MPI_Allreduce (CPU, f32 sum, in place)\n\n"
     << "Machine: " << m.cpu << ", " << m.cores << " cores, " << fmt("%.1f", m.memory_gib)
     << " GiB; " << m.mpi << "; " << m.ruche << ". " << ranks << " ranks on one machine (" << m.host
     << "), so the transport is Open MPI's shared memory, not a network. Median (min-max) over "
     << rounds << " rounds, sides cycled in every round; each sample is the mean time per call "
     << "over the round's iterations, slowest rank. busbw as nccl-tests: bytes / time * 2(n-1)/n, "
     << "GB/s = 1e9 B/s. ratio = ruche busbw / MPI busbw (goal >= 0.95 from "
     << size_name(goal_bytes) << " up).\n\n";
  md << "| size | iters | MPI_Allreduce us | ruche us | ruche - MPI us | MPI busbw GB/s | "
        "ruche busbw GB/s | ratio | ratio per round: median (min-max) | goal |\n"
     << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    const Stats& a = r.sides.at("mpi");
    const Stats& b = r.sides.at("ruche");
    const double ratio = a.median() / b.median();
    const Stats rr = round_ratios(a, b);
    md << "| " << size_name(r.bytes) << " | " << r.iterations << " | "
       << fmt("%.1f", a.median() * 1e6) << " (" << fmt("%.1f", a.min() * 1e6) << "-"
       << fmt("%.1f", a.max() * 1e6) << ") | " << fmt("%.1f", b.median() * 1e6) << " ("
       << fmt("%.1f", b.min() * 1e6) << "-" << fmt("%.1f", b.max() * 1e6) << ") | "
       << fmt("%+.1f", (b.median() - a.median()) * 1e6) << " | "
       << fmt("%.3f", busbw_gbs(r.bytes, a.median(), ranks)) << " | "
       << fmt("%.3f", busbw_gbs(r.bytes, b.median(), ranks)) << " | " << fmt("%.2f", ratio)
       << "x | " << fmt("%.2f", rr.median()) << " (" << fmt("%.2f", rr.min()) << "-"
       << fmt("%.2f", rr.max()) << ") | "
       << (r.bytes < goal_bytes ? "latency"
           : ratio >= 0.95      ? "met"
                                : "**missed**")
       << " |\n";
  }
  if (std::find(kSides.begin(), kSides.end(), "ruche_avg") != kSides.end() &&
      std::find(kSides.begin(), kSides.end(), "mpi_poll") != kSides.end() &&
      std::find(kSides.begin(), kSides.end(), "mpi_nb") != kSides.end()) {
    md << "\n## Where ruche's time goes\n\nMedian us per call. mpi -> mpi_nb: Open MPI's "
          "nonblocking algorithm (coll/libnbc) instead of its blocking one (coll/tuned); "
          "mpi_nb -> mpi_poll: ruche's polling (yields for 50 us, then MPI_Test between sleeps "
          "of 8 to 200 us) instead of "
          "MPI_Wait; mpi_poll -> ruche: the comm thread hand-off (queue, condition variables); "
          "ruche -> ruche_avg: the division pass of avg.\n\n"
       << "| size | mpi | mpi_nb | mpi_poll | ruche | ruche_avg | mpi_nb/mpi | mpi_poll/mpi_nb | "
          "ruche/mpi_poll |\n|---|---|---|---|---|---|---|---|---|\n";
    for (const Row& r : rows) {
      auto us = [&](const char* s) { return r.sides.at(s).median() * 1e6; };
      md << "| " << size_name(r.bytes);
      for (const char* s : {"mpi", "mpi_nb", "mpi_poll", "ruche", "ruche_avg"})
        md << " | " << fmt("%.1f", us(s));
      md << " | " << fmt("%.2f", us("mpi_nb") / us("mpi")) << " | "
         << fmt("%.2f", us("mpi_poll") / us("mpi_nb")) << " | "
         << fmt("%.2f", us("ruche") / us("mpi_poll")) << " |\n";
    }
  }
  md << "\nSides:\n\n";
  for (const std::string& s : kSides) md << "- " << s << ": " << side_description(s) << "\n";
  md << "\nNotes:\n\n- OMPI_MCA_mpi_yield_when_idle: " << m.yield_when_idle << "\n"
     << "- load average before " << m.load_before << ", after " << m.load_after
     << " (/proc/loadavg) on " << m.cores << " cores shared with other work\n"
     << "\nCommand: `" << command << "`; " << fmt("%.0f", wall_s) << " s.\n";
  return md.str();
}

std::string json(const std::vector<Row>& rows, const Machine& m, int ranks, int rounds,
                 std::int64_t goal_bytes, const std::string& command, double wall_s) {
  std::ostringstream js;
  js << "{\n  \"benchmark\": \"allreduce\",\n"
     << "  \"what\": \"in-place f32 sum all-reduce: ruche MpiCommunicator vs raw MPI, busbw as "
        "nccl-tests (bytes / s * 2(n-1)/n, GB = 1e9)\",\n"
     << "  \"machine\": {\"host\": " << json_string(m.host) << ", \"cores\": " << m.cores
     << ", \"cpu\": " << json_string(m.cpu) << ", \"memory_gib\": " << fmt("%.1f", m.memory_gib)
     << ", \"gpu\": \"none\", \"nodes\": 1, \"transport\": \"Open MPI shared memory\"},\n"
     << "  \"mpi_yield_when_idle\": " << json_string(m.yield_when_idle) << ",\n"
     << "  \"versions\": {\"mpi\": " << json_string(m.mpi)
     << ", \"ruche\": " << json_string(m.ruche) << "},\n"
     << "  \"command\": " << json_string(command) << ",\n  \"ranks\": " << ranks
     << ",\n  \"rounds\": " << rounds
     << ",\n  \"goal\": {\"ratio\": 0.95, \"from_bytes\": " << goal_bytes
     << "},\n  \"load_before\": " << json_string(m.load_before)
     << ",\n  \"load_after\": " << json_string(m.load_after)
     << ",\n  \"wall_s\": " << fmt("%.1f", wall_s) << ",\n  \"sides\": {";
  for (std::size_t i = 0; i < kSides.size(); ++i)
    js << (i ? ", " : "") << json_string(kSides[i]) << ": "
       << json_string(side_description(kSides[i]));
  js << "},\n  \"results\": [\n";
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    js << "    {\"bytes\": " << r.bytes << ", \"count\": " << r.bytes / 4
       << ", \"iterations\": " << r.iterations << ", \"ratio_busbw\": "
       << fmt("%.4f", r.sides.at("mpi").median() / r.sides.at("ruche").median())
       << ", \"ratio_rounds\": [";
    const Stats rr = round_ratios(r.sides.at("mpi"), r.sides.at("ruche"));
    for (std::size_t j = 0; j < rr.seconds.size(); ++j)
      js << (j ? ", " : "") << fmt("%.4f", rr.seconds[j]);
    js << "], \"sides\": {\n";
    std::size_t i = 0;
    for (const auto& [name, s] : r.sides) {
      js << "      " << json_string(name) << ": {\"median_us\": " << fmt("%.3f", s.median() * 1e6)
         << ", \"min_us\": " << fmt("%.3f", s.min() * 1e6)
         << ", \"max_us\": " << fmt("%.3f", s.max() * 1e6)
         << ", \"busbw_gbs\": " << fmt("%.4f", busbw_gbs(r.bytes, s.median(), ranks))
         << ", \"samples_us\": [";
      for (std::size_t j = 0; j < s.seconds.size(); ++j)
        js << (j ? ", " : "") << fmt("%.3f", s.seconds[j] * 1e6);
      js << "]}" << (++i < r.sides.size() ? "," : "") << "\n";
    }
    js << "    }}" << (k + 1 < rows.size() ? "," : "") << "\n";
  }
  js << "  ]\n}\n";
  return js.str();
}

}  // namespace

int run(int argc, char** argv) {
  World world;
  std::int64_t min_bytes = 1 << 10, max_bytes = std::int64_t{256} << 20, goal_bytes = 1 << 20;
  std::int64_t round_bytes = std::int64_t{128} << 20;
  int rounds = 5, warmup = 2, min_iters = 2, max_iters = 2000, step = 4;
  std::string out_dir;
  CLI::App app{"allreduce_bench: ruche MpiCommunicator all_reduce vs raw MPI_Allreduce"};
  app.add_option("--min-bytes", min_bytes, "smallest buffer, bytes of f32");
  app.add_option("--max-bytes", max_bytes, "largest buffer");
  app.add_option("--step", step, "size factor between rows (4: 1 KiB, 4 KiB, ...)");
  app.add_option("--rounds", rounds, "rounds per size (median over rounds)");
  app.add_option("--warmup", warmup, "untimed calls per side and size");
  app.add_option("--round-bytes", round_bytes, "about this much data per side and round");
  app.add_option("--min-iters", min_iters);
  app.add_option("--max-iters", max_iters);
  app.add_option("--out", out_dir, "write allreduce-DATE.{md,json} here (rank 0)");
  std::string sides_text = "mpi,ruche,mpi_nb,mpi_poll,ruche_avg,mpi_barrier";
  app.add_option("--sides", sides_text,
                 "comma-separated sides to cycle (mpi and ruche always; e.g. mpi,ruche for a "
                 "focused A/B)");
  std::string prefix = "allreduce";
  app.add_option("--name", prefix, "results file name: NAME-DATE.{md,json}");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (world.rank() == 0) app.exit(e);
    return e.get_exit_code();
  }

  {
    std::vector<std::string> chosen;
    std::stringstream ss(sides_text);
    for (std::string side; std::getline(ss, side, ',');) {
      if (std::find(kAllSides.begin(), kAllSides.end(), side) == kAllSides.end()) {
        if (world.rank() == 0)
          std::fprintf(stderr, "allreduce_bench: unknown side '%s'\n", side.c_str());
        return 2;
      }
      chosen.push_back(side);
    }
    for (const char* must : {"ruche", "mpi"})
      if (std::find(chosen.begin(), chosen.end(), must) == chosen.end())
        chosen.insert(chosen.begin(), must);
    kSides = chosen;
  }
  const int ranks = world.size();
  const bool root = world.rank() == 0;
  Machine machine = describe_machine(world);
  MpiCommunicator comm(world);
  std::vector<float> buffer(static_cast<std::size_t>(max_bytes / 4));  // touched: no page faults
  float* data = buffer.data();
  std::string command = "mpirun -np " + std::to_string(ranks);
  for (int i = 0; i < argc; ++i) command += std::string(" ") + argv[i];
  if (root)
    std::printf("allreduce_bench: %d ranks, %s; %s\n%8s %6s %12s %12s %9s %9s %7s\n", ranks,
                machine.mpi.c_str(), machine.ruche.c_str(), "size", "iters", "mpi us", "ruche us",
                "mpi GB/s", "ruche GB/s", "ratio");

  const auto wall_start = std::chrono::steady_clock::now();
  std::vector<Row> rows;
  for (std::int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= step) {
    const std::int64_t count = bytes / 4;
    Row row;
    row.bytes = bytes;
    row.iterations = iterations_for(bytes, round_bytes, min_iters, max_iters);
    for (const std::string& side : kSides) {
      check_side(side, world, comm, data, count);
      std::fill(data, data + count, 0.0f);  // zeros stay zeros: no overflow or denormals
      if (warmup > 0) time_side(side, world, comm, data, count, warmup);
    }
    for (int round = 0; round < rounds; ++round)
      for (const std::string& side : kSides)
        row.sides[side].seconds.push_back(
            time_side(side, world, comm, data, count, row.iterations));
    if (root) {
      const double a = row.sides["mpi"].median(), b = row.sides["ruche"].median();
      std::printf("%8s %6d %12.1f %12.1f %9.3f %9.3f %6.2fx\n", size_name(bytes).c_str(),
                  row.iterations, a * 1e6, b * 1e6, busbw_gbs(bytes, a, ranks),
                  busbw_gbs(bytes, b, ranks), a / b);
      std::fflush(stdout);
    }
    rows.push_back(std::move(row));
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  machine.load_after = read_line("/proc/loadavg");

  if (root) {
    const std::string md = markdown(rows, machine, ranks, rounds, goal_bytes, command, wall_s);
    std::printf("\n%s", md.c_str());
    if (!out_dir.empty()) {
      const std::string base = out_dir + "/" + prefix + "-" + today();
      std::ofstream(base + ".md") << md;
      std::ofstream(base + ".json")
          << json(rows, machine, ranks, rounds, goal_bytes, command, wall_s);
      std::printf("wrote %s.{md,json}\n", base.c_str());
    }
  }
  std::fflush(stdout);  // before MPI_Finalize (~World): mpirun may drop output written after it
  return 0;
}

// Anything thrown (a bad flag value, a failed MPI call) is one line and exit 1, never an abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "allreduce_bench: %s\n", e.what());
    return 1;
  }
}
