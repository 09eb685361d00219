// checkpoint_bench: save and load throughput of ruche's checkpoints against the disk's own, in the
// same run (docs/ARCHITECTURE.md, Benchmarks; Checkpoints). benchmarks/checkpoint_cost.py runs
// it and writes the result; alone it prints one JSON object on stdout.
//
//   build/checkpoint_bench --model resnet18 --shape 3,32,32 --dir /tmp/x --reps 5
//
// The state is the whole training state of a real run (training_state_layout of the model's Net
// and an SGD-with-momentum optimizer, ruche's default solver), saved as one shard (1 rank).
// Sides, in an order that rotates every repetition (each side first, second and third in turn, so
// drift and the after-effects of the previous write hit all alike; use a multiple of 3 reps):
//   write_shard   ruche's durable shard write: crc32c, write to .tmp, fsync, rename, fsync of the
//                 directory (what the ShardWriter thread does)
//   plain_write   the disk's own: open, write() of the same bytes, fsync, close, same directory
//   load          load_checkpoint: manifest, COMMIT, read of the shard into a fresh buffer, crc
//                 verify (a committed checkpoint written by commit_checkpoint)
//   plain_read    the disk's own: open, read() of the same shard file into a fresh buffer
// Before each read the file's pages are evicted from the page cache (posix_fadvise DONTNEED on
// the clean, fsynced file; or, with --drop-caches, echo 3 > /proc/sys/vm/drop_caches), and
// mincore says what share of the file was still resident: the result records it.
//   plain_read_reused  the same read into a buffer already faulted in: the disk alone, without
//                 the cost of a fresh buffer's page faults that both sides above pay
//   steps_*       write_shard's steps by hand, each timed (where its time goes)
// Also: snapshot (the copy the training thread makes at the save step) into a fresh buffer as the
// trainer does and into a reused one, crc32c alone, commit_checkpoint and restore.
// MB are 1e6 bytes.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/checkpoint/checkpoint.h"
#include "engine/graph/net.h"
#include "engine/models/models.h"
#include "engine/optim/optimizer.h"
#include "engine/train/trainer.h"

using namespace ruche;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "checkpoint_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// The disk's own write: one file, write() in a loop, fsync, close.
void plain_write(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + path);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("write " + path);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) die("fsync " + path);
  if (::close(fd) != 0) die("close " + path);
}

// The disk's own read: open, read() the whole file into a fresh buffer (as load_checkpoint does).
std::size_t plain_read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) die("stat " + path);
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("read " + path);
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  // keep the read from being optimized away
  volatile std::uint8_t sink = buffer[buffer.size() / 2];
  (void)sink;
  return done;
}

// write_shard's steps done by hand, each timed: mkdir of the step directory, crc32c, open + write
// of path.tmp, fsync, close, rename, fsync of the directory. Where write_shard's time goes.
std::map<std::string, double> durable_steps(const std::string& dir,
                                            const std::vector<std::uint8_t>& bytes) {
  std::map<std::string, double> t;
  auto t0 = Clock::now();
  fs::create_directories(dir);
  t["mkdir"] = seconds_since(t0);
  t0 = Clock::now();
  volatile std::uint32_t c = crc32c(bytes.data(), bytes.size());
  (void)c;
  t["crc32c"] = seconds_since(t0);
  const std::string path = dir + "/shard.bin", tmp = path + ".tmp";
  t0 = Clock::now();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + tmp);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("write " + tmp);
    done += static_cast<std::size_t>(n);
  }
  t["write"] = seconds_since(t0);
  t0 = Clock::now();
  if (::fsync(fd) != 0) die("fsync " + tmp);
  t["fsync"] = seconds_since(t0);
  t0 = Clock::now();
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) die("rename " + tmp);
  t["close_rename"] = seconds_since(t0);
  t0 = Clock::now();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) die("fsync " + dir);
  ::close(dfd);
  t["dir_fsync"] = seconds_since(t0);
  return t;
}

// The disk's own read into a buffer that is already faulted in (no allocation in the time).
void plain_read_into(const std::string& path, std::vector<std::uint8_t>& buffer) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) die("stat " + path);
  if (buffer.size() < static_cast<std::size_t>(st.st_size)) die("buffer too small for " + path);
  std::size_t done = 0;
  const auto want = static_cast<std::size_t>(st.st_size);
  while (done < want) {
    const ssize_t n = ::read(fd, buffer.data() + done, want - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("read " + path);
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

// Share of the file's pages resident in the page cache (mincore over a read-only mapping).
double resident_share(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) die("stat " + path);
  if (st.st_size == 0) {
    ::close(fd);
    return 0;
  }
  void* map = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) die("mmap " + path);
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::size_t pages = (static_cast<std::size_t>(st.st_size) + page - 1) / page;
  std::vector<unsigned char> vec(pages);
  if (::mincore(map, static_cast<std::size_t>(st.st_size), vec.data()) != 0) die("mincore");
  ::munmap(map, static_cast<std::size_t>(st.st_size));
  std::size_t in = 0;
  for (unsigned char v : vec) in += v & 1;
  return static_cast<double>(in) / static_cast<double>(pages);
}

// Evicts the file from the page cache; returns the share still resident afterwards.
double evict(const std::string& path, bool drop_caches) {
  if (drop_caches) {
    ::sync();
    std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
  } else {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  return resident_share(path);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string json_list(const std::vector<double>& v) {
  std::ostringstream o;
  o << "[";
  for (std::size_t i = 0; i < v.size(); ++i) o << (i ? ", " : "") << v[i];
  return o.str() + "]";
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"checkpoint save/load throughput against the disk's own"};
  std::string model = "resnet18", shape_text = "3,32,32", dir;
  int classes = 10, reps = 9;
  bool drop_caches = false;
  app.add_option("--model", model, "built-in model")->capture_default_str();
  app.add_option("--shape", shape_text, "sample shape C,H,W")->capture_default_str();
  app.add_option("--classes", classes, "classes")->capture_default_str();
  app.add_option("--dir", dir, "directory to write in (a fresh subdirectory is made)")->required();
  app.add_option("--reps", reps, "repetitions of each side")->capture_default_str();
  app.add_flag("--drop-caches", drop_caches,
               "evict with echo 3 > /proc/sys/vm/drop_caches (root) instead of posix_fadvise");
  CLI11_PARSE(app, argc, argv);

  Shape shape;
  {
    std::stringstream ss(shape_text);
    std::string part;
    while (std::getline(ss, part, ',')) shape.push_back(std::stoll(part));
  }
  const proto::NetParameter net_param = builtin_model(model, ModelOptions{shape, classes});
  NetOptions net_opts;
  net_opts.batch_size = 1;
  net_opts.sample_shape = shape;
  net_opts.num_classes = classes;
  const proto::SolverParameter solver = default_solver();
  net_opts.no_decay_bn_bias = solver.no_decay_bn_bias();
  std::unique_ptr<Net> net = Net::build(net_param, net_opts);
  net->init_params(1);
  auto optimizer = make_optimizer(solver, net->param_table(), net->num_trainable());
  const StateLayout layout = training_state_layout(*net, *optimizer);
  const std::int64_t total = layout.total_bytes();
  const ByteRange all{0, total};
  const double mb = static_cast<double>(total) / 1e6;

  const fs::path root = fs::path(dir) / ("checkpoint_bench-" + std::to_string(::getpid()));
  fs::create_directories(root);
  const std::string ckpt_root = (root / "ckpt").string();
  const std::string plain_path = (root / "plain.bin").string();

  CheckpointMeta meta;
  meta.world_size = 1;
  meta.net = "bench";
  meta.solver = "bench";

  std::map<std::string, std::vector<double>> t;         // seconds per side
  std::map<std::string, std::vector<double>> resident;  // share resident before each read
  std::vector<std::uint8_t> bytes, reused;
  snapshot(layout, all, reused);  // warm: the reused buffer is faulted in

  // warm-up round (not recorded): a write and a load of each kind
  snapshot(layout, all, bytes);
  plain_write(plain_path, bytes);
  {
    const ShardRecord r =
        write_shard((fs::path(ckpt_root) / checkpoint_dir_name(0)).string(), 0, 1, all, bytes);
    commit_checkpoint(ckpt_root, 0, layout, meta, {r}, 1);
    (void)load_checkpoint((fs::path(ckpt_root) / checkpoint_dir_name(0)).string());
    (void)plain_read(plain_path);
  }

  for (int rep = 0; rep < reps; ++rep) {
    const std::int64_t step = rep + 1;
    const std::string step_dir = (fs::path(ckpt_root) / checkpoint_dir_name(step)).string();
    // snapshot as the trainer does: a fresh vector each save (its pages faulted in by the copy)
    {
      std::vector<std::uint8_t> fresh;
      auto t0 = Clock::now();
      snapshot(layout, all, fresh);
      t["snapshot_fresh"].push_back(seconds_since(t0));
      bytes = std::move(fresh);
    }
    {
      auto t0 = Clock::now();
      snapshot(layout, all, reused);
      t["snapshot_reused"].push_back(seconds_since(t0));
    }
    {
      auto t0 = Clock::now();
      volatile std::uint32_t c = crc32c(bytes.data(), bytes.size());
      (void)c;
      t["crc32c"].push_back(seconds_since(t0));
    }
    // writes: the order flips every repetition
    ShardRecord record;
    auto ruche_write = [&] {
      auto t0 = Clock::now();
      record = write_shard(step_dir, 0, 1, all, bytes);
      t["write_shard"].push_back(seconds_since(t0));
    };
    auto disk_write = [&] {
      fs::remove(plain_path);
      auto t0 = Clock::now();
      plain_write(plain_path, bytes);
      t["plain_write"].push_back(seconds_since(t0));
    };
    auto steps_write = [&] {
      fs::remove_all(root / "steps");
      auto t0 = Clock::now();
      for (const auto& [phase, s] : durable_steps((root / "steps").string(), bytes)) {
        t["steps_" + phase].push_back(s);
      }
      t["steps_total"].push_back(seconds_since(t0));
    };
    // each side takes each place in the order in turn: a write right after another pays for the
    // virtual disk still flushing the one before, whatever its fsync said
    const std::vector<std::function<void()>> writes = {disk_write, ruche_write, steps_write};
    for (int i = 0; i < 3; ++i) writes[static_cast<std::size_t>((rep + i) % 3)]();
    {
      auto t0 = Clock::now();
      commit_checkpoint(ckpt_root, step, layout, meta, {record}, 2);
      t["commit"].push_back(seconds_since(t0));
    }
    // reads: evict the file, then read; the order flips every repetition
    const std::string shard_path = (fs::path(step_dir) / record.file).string();
    auto ruche_load = [&] {
      resident["load"].push_back(evict(shard_path, drop_caches));
      auto t0 = Clock::now();
      LoadedCheckpoint loaded = load_checkpoint(step_dir);
      t["load"].push_back(seconds_since(t0));
      auto t1 = Clock::now();
      restore(loaded, layout);
      t["restore"].push_back(seconds_since(t1));
    };
    auto disk_read = [&] {
      // the same shard file, so both read the same blocks of the disk
      resident["plain_read"].push_back(evict(shard_path, drop_caches));
      auto t0 = Clock::now();
      plain_read(shard_path);
      t["plain_read"].push_back(seconds_since(t0));
    };
    auto disk_read_reused = [&] {
      resident["plain_read_reused"].push_back(evict(shard_path, drop_caches));
      auto t0 = Clock::now();
      plain_read_into(shard_path, reused);
      t["plain_read_reused"].push_back(seconds_since(t0));
    };
    const std::vector<std::function<void()>> reads = {disk_read, ruche_load, disk_read_reused};
    for (int i = 0; i < 3; ++i) reads[static_cast<std::size_t>((rep + i) % 3)]();
    // the page-cache read of the same file (just read, so resident): the memory-speed ceiling
    {
      resident["plain_read_cached"].push_back(resident_share(shard_path));
      auto t0 = Clock::now();
      plain_read(shard_path);
      t["plain_read_cached"].push_back(seconds_since(t0));
      auto t1 = Clock::now();
      (void)load_checkpoint(step_dir);
      t["load_cached"].push_back(seconds_since(t1));
    }
  }
  fs::remove_all(root);

  std::ostringstream o;
  o << "{\n  \"model\": \"" << model << "\", \"shape\": \"" << shape_text
    << "\", \"state_bytes\": " << total << ", \"tensors\": " << layout.tensors.size()
    << ", \"regions\": [";
  for (std::size_t i = 0; i < layout.regions.size(); ++i) {
    o << (i ? ", " : "") << "{\"name\": \"" << layout.regions[i].name
      << "\", \"bytes\": " << layout.regions[i].tensor.nbytes() << "}";
  }
  o << "],\n  \"reps\": " << reps << ", \"eviction\": \""
    << (drop_caches ? "drop_caches" : "posix_fadvise DONTNEED") << "\",\n  \"seconds\": {";
  bool first = true;
  for (const auto& [side, v] : t) {
    o << (first ? "" : ",") << "\n    \"" << side << "\": " << json_list(v);
    first = false;
  }
  o << "\n  },\n  \"median_mb_per_s\": {";
  first = true;
  for (const auto& [side, v] : t) {
    o << (first ? "" : ",") << "\n    \"" << side << "\": " << mb / median(v);
    first = false;
  }
  o << "\n  },\n  \"resident_share_before_read\": {";
  first = true;
  for (const auto& [side, v] : resident) {
    o << (first ? "" : ",") << "\n    \"" << side << "\": " << json_list(v);
    first = false;
  }
  o << "\n  }\n}\n";
  std::printf("%s", o.str().c_str());
  return 0;
}

// Anything thrown (a bad flag value, a file that cannot be written) is one line and exit 1.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_bench: %s\n", e.what());
    return 1;
  }
}
