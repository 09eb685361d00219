#include "engine/data/index_shards.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "engine/checkpoint/file_io.h"
#include "engine/data/tar.h"
#include "engine/data/webdataset.h"
#include "engine/error.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCacheDir = ".ruche-index";
constexpr const char* kCacheHeader = "# ruche shard scan 1";

// What reading one shard gave.
struct ShardScan {
  ShardInfo info;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t max_index = -1;  // the largest integer label
  std::set<std::string> names;  // labels given as names
  std::int64_t skipped_members = 0;
  std::vector<std::string> incomplete;  // samples lacking an image or a label
  bool reused = false;
};

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
    fields.push_back(line.substr(start, tab - start));
  }
  fields.push_back(line.substr(start));
  return fields;
}

template <typename T>
bool parse_number(const std::string& s, T* v) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size();
}

void file_stamp(const std::string& path, std::uint64_t* size, std::int64_t* mtime_ns) {
  struct stat st {};
  RUCHE_REQUIRE(::stat(path.c_str(), &st) == 0) << path << ": cannot stat";
  *size = static_cast<std::uint64_t>(st.st_size);
  *mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Reads one shard: members grouped into samples by key.
ShardScan scan_shard(const std::string& dir, const std::string& file) {
  const std::string path = (fs::path(dir) / file).string();
  ShardScan r;
  r.info.split = shard_split_of(file);
  r.info.file = file;
  file_stamp(path, &r.size, &r.mtime_ns);
  TarReader reader(path);
  // The sample being gathered.
  std::string key;
  std::uint64_t offset = 0;
  int members = 0;
  bool image = false;
  int label = 3;  // the rank of the label member taken (3: none)
  const auto close = [&] {
    if (members == 0) return;
    if (image && label < 3) {
      r.info.offsets.push_back(offset);
    } else if (!image && label == 3) {
      r.skipped_members += members;
    } else {
      r.incomplete.push_back(file + ": sample '" + key + "' at byte " + std::to_string(offset) +
                             (image ? " has no label (.cls, .json with \"label\", or .txt)"
                                    : " has no image (.jpg, .jpeg or .png)"));
    }
    members = 0;
    image = false;
    label = 3;
  };
  TarMember m;
  std::uint64_t size = 0;
  std::string k, ext;
  while (reader.next_header(&m, &size)) {
    if (!m.regular() || !webdataset_key(m.name, &k, &ext)) {
      ++r.skipped_members;
      continue;
    }
    if (members == 0 || k != key) {
      close();
      key = k;
      offset = m.offset;
    }
    ++members;
    if (is_image_extension(ext)) image = true;
    const int rank = label_rank(ext);
    if (rank >= 0 && rank < label) {
      const std::vector<std::uint8_t> data = reader.data_of_last(size);
      const SampleLabel l =
          parse_label(ext, data.data(), data.size(),
                      path + ": " + m.name + " at byte " + std::to_string(m.offset));
      if (l.found) {
        label = rank;
        if (l.index >= 0) {
          r.max_index = std::max(r.max_index, l.index);
        } else {
          r.names.insert(l.name);
        }
      }
    }
  }
  close();
  r.info.end = reader.offset();  // where the end-of-archive blocks start
  return r;
}

std::string cache_path(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / kCacheDir / (file + ".tsv")).string();
}

std::string cache_text(const ShardScan& r) {
  std::ostringstream t;
  t << kCacheHeader << "\n"
    << "source\t" << r.size << '\t' << r.mtime_ns << "\n"
    << "shard\t" << r.info.end;
  for (std::uint64_t o : r.info.offsets) t << '\t' << o;
  t << "\nlabels\t" << r.max_index;
  for (const std::string& n : r.names) t << '\t' << n;
  t << "\nskipped\t" << r.skipped_members << "\n";
  for (const std::string& s : r.incomplete) t << "incomplete\t" << s << "\n";
  return t.str();
}

// The kept result of `file` when it is there and the shard is unchanged since.
bool read_cache(const std::string& dir, const std::string& file, ShardScan* r) {
  const std::string path = cache_path(dir, file);
  if (!fs::exists(path)) return false;
  std::uint64_t size = 0;
  std::int64_t mtime = 0;
  file_stamp((fs::path(dir) / file).string(), &size, &mtime);
  std::istringstream lines(checkpoint_io::read_file(path));
  std::string line;
  if (!std::getline(lines, line) || line != kCacheHeader) return false;
  ShardScan s;
  s.info.split = shard_split_of(file);
  s.info.file = file;
  bool source = false, shard = false, labels = false;
  while (std::getline(lines, line)) {
    const std::vector<std::string> f = split_tabs(line);
    if (f[0] == "source" && f.size() == 3) {
      source = parse_number(f[1], &s.size) && parse_number(f[2], &s.mtime_ns);
    } else if (f[0] == "shard" && f.size() >= 2) {
      shard = parse_number(f[1], &s.info.end);
      for (std::size_t i = 2; i < f.size(); ++i) {
        std::uint64_t o = 0;
        shard = shard && parse_number(f[i], &o);
        s.info.offsets.push_back(o);
      }
    } else if (f[0] == "labels" && f.size() >= 2) {
      labels = parse_number(f[1], &s.max_index);
      s.names.insert(f.begin() + 2, f.end());
    } else if (f[0] == "skipped" && f.size() == 2) {
      if (!parse_number(f[1], &s.skipped_members)) return false;
    } else if (f[0] == "incomplete" && f.size() == 2) {
      s.incomplete.push_back(f[1]);
    } else {
      return false;
    }
  }
  if (!(source && shard && labels) || s.size != size || s.mtime_ns != mtime) return false;
  s.reused = true;
  *r = std::move(s);
  return true;
}

std::vector<std::string> read_names(const std::string& path) {
  std::vector<std::string> names;
  std::istringstream lines(checkpoint_io::read_file(path));
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

bool just_numbers(const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] != std::to_string(i)) return false;
  }
  return true;
}

// The class list of the directory's shards.
std::vector<std::string> class_list(const std::string& dir, const std::vector<ShardScan>& scans) {
  std::vector<std::string> given;
  std::string given_path;
  for (const char* name : {"classes.txt", kShardLabelsFile}) {
    const std::string path = (fs::path(dir) / name).string();
    if (!fs::is_regular_file(path)) continue;
    std::vector<std::string> names = read_names(path);
    if (names.empty() || just_numbers(names)) continue;
    given = std::move(names);
    given_path = path;
    break;
  }
  std::int64_t max_index = -1;
  std::set<std::string> names;
  for (const ShardScan& s : scans) {
    max_index = std::max(max_index, s.max_index);
    names.insert(s.names.begin(), s.names.end());
  }
  if (!given.empty()) {
    RUCHE_REQUIRE(max_index < static_cast<std::int64_t>(given.size()))
        << dir << ": a label is " << max_index << " but " << given_path << " names " << given.size()
        << " classes";
    const std::set<std::string> known(given.begin(), given.end());
    for (const std::string& n : names) {
      RUCHE_REQUIRE(known.count(n)) << dir << ": label '" << n << "' is not in " << given_path;
    }
    return given;
  }
  RUCHE_REQUIRE(names.empty() || max_index < 0)
      << dir << ": the labels are numbers and names (e.g. '" << *names.begin()
      << "'); give the class names, one a line, in " << (fs::path(dir) / "classes.txt").string();
  if (!names.empty()) return {names.begin(), names.end()};
  RUCHE_REQUIRE(max_index >= 0) << dir << ": no labelled samples in the shards";
  std::vector<std::string> numbers;
  for (std::int64_t i = 0; i <= max_index; ++i) numbers.push_back(std::to_string(i));
  return numbers;
}

std::vector<std::string> tar_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name[0] != '.' && name.ends_with(".tar") && e.is_regular_file()) files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  return files;
}

void say(std::FILE* log, const std::string& prefix, const std::string& text) {
  if (!log) return;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::fprintf(log, "%s%s\n", prefix.c_str(), line.c_str());
  }
  std::fflush(log);
}

}  // namespace

std::string shard_split_of(const std::string& file) {
  const std::string base = fs::path(file).filename().string();
  if (base.starts_with("val")) return "val";
  if (base.starts_with("test")) return "test";
  return "train";
}

std::string IndexSummary::text() const {
  char line[256];
  std::snprintf(line, sizeof line,
                "%d shards (%d unchanged since the last index, reused), %lld samples, %lld "
                "members not in a sample skipped, %zu incomplete samples skipped, %.1f s",
                shards, reused, static_cast<long long>(samples),
                static_cast<long long>(skipped_members), incomplete.size(), seconds);
  std::string out = line;
  for (const std::string& s : incomplete) out += "\nskipped " + s;
  return out;
}

ShardIndex index_shards(const IndexOptions& o, IndexSummary* summary_out) {
  const auto start = std::chrono::steady_clock::now();
  RUCHE_REQUIRE(fs::is_directory(o.dir)) << o.dir << ": not a directory";
  const std::vector<std::string> files = tar_files(o.dir);
  RUCHE_REQUIRE(!files.empty()) << o.dir << ": no .tar shards in it";
  if (o.write) checkpoint_io::make_directories((fs::path(o.dir) / kCacheDir).string());

  std::vector<ShardScan> scans(files.size());
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  std::exception_ptr error;
  std::size_t done = 0;
  std::int64_t samples = 0;
  const bool tty = o.log && ::isatty(fileno(o.log));
  const auto work = [&] {
    for (std::size_t i; (i = next++) < files.size();) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (error) return;
      }
      try {
        ShardScan r;
        if (!read_cache(o.dir, files[i], &r)) {
          r = scan_shard(o.dir, files[i]);
          if (o.write)
            checkpoint_io::write_file_durably(cache_path(o.dir, files[i]), cache_text(r));
        }
        std::lock_guard<std::mutex> lock(mutex);
        ++done;
        samples += r.info.samples();
        scans[i] = std::move(r);
        if (tty) {
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          std::fprintf(o.log, "\r%s[%zu/%zu shards] %lld samples, %.1f s", o.prefix.c_str(), done,
                       files.size(), static_cast<long long>(samples), s);
          std::fflush(o.log);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        return;
      }
    }
  };
  const int workers = o.workers > 0
                          ? o.workers
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min<int>(workers, static_cast<int>(files.size())); ++t) {
    threads.emplace_back(work);
  }
  for (std::thread& t : threads) t.join();
  if (tty) std::fprintf(o.log, "\n");
  if (error) std::rethrow_exception(error);

  ShardIndex index;
  index.dir = o.dir;
  index.classes = class_list(o.dir, scans);
  IndexSummary summary;
  for (ShardScan& s : scans) {
    ++summary.shards;
    summary.reused += s.reused ? 1 : 0;
    summary.samples += s.info.samples();
    summary.skipped_members += s.skipped_members;
    summary.incomplete.insert(summary.incomplete.end(), s.incomplete.begin(), s.incomplete.end());
    index.shards.push_back(std::move(s.info));
  }
  if (o.write) write_shard_index(index);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  say(o.log, o.prefix, summary.text());
  if (summary_out) *summary_out = summary;
  return index;
}

// ---- patterns ----

std::vector<std::string> expand_braces(const std::string& pattern) {
  // The first top-level {...} that holds a ',' or '..'; the rest recursively.
  for (std::size_t open = pattern.find('{'); open != std::string::npos;
       open = pattern.find('{', open + 1)) {
    int depth = 0;
    std::size_t close = std::string::npos;
    std::vector<std::size_t> commas;
    for (std::size_t i = open; i < pattern.size(); ++i) {
      if (pattern[i] == '{') ++depth;
      if (pattern[i] == '}' && --depth == 0) {
        close = i;
        break;
      }
      if (pattern[i] == ',' && depth == 1) commas.push_back(i);
    }
    if (close == std::string::npos) break;
    const std::string inner = pattern.substr(open + 1, close - open - 1);
    const std::string head = pattern.substr(0, open), tail = pattern.substr(close + 1);
    std::vector<std::string> parts;
    if (!commas.empty()) {
      std::size_t from = open + 1;
      for (std::size_t c : commas) {
        parts.push_back(pattern.substr(from, c - from));
        from = c + 1;
      }
      parts.push_back(pattern.substr(from, close - from));
    } else if (const std::size_t dots = inner.find(".."); dots != std::string::npos) {
      const std::string a = inner.substr(0, dots), b = inner.substr(dots + 2);
      std::int64_t lo = 0, hi = 0;
      if (!parse_number(a, &lo) || !parse_number(b, &hi)) continue;
      const bool pad = (a.size() > 1 && a[0] == '0') || (b.size() > 1 && b[0] == '0');
      const std::size_t width = pad ? std::max(a.size(), b.size()) : 0;
      RUCHE_REQUIRE(std::abs(hi - lo) < 10000000) << pattern << ": a range of over 10^7 names";
      for (std::int64_t v = lo;; v += lo <= hi ? 1 : -1) {
        std::string n = std::to_string(v);
        if (n.size() < width) n.insert(0, width - n.size(), '0');
        parts.push_back(n);
        if (v == hi) break;
      }
    } else {
      continue;  // a literal {...}
    }
    std::vector<std::string> out;
    for (const std::string& p : parts) {
      for (std::string& e : expand_braces(std::string(head).append(p).append(tail)))
        out.push_back(std::move(e));
    }
    return out;
  }
  return {pattern};
}

std::vector<std::string> expand_shard_pattern(const std::string& pattern) {
  std::vector<std::string> files;
  for (const std::string& name : expand_braces(pattern)) {
    const fs::path p(name);
    const std::string base = p.filename().string();
    if (base.find_first_of("*?[") == std::string::npos) {
      RUCHE_REQUIRE(fs::is_regular_file(name))
          << name << ": no such shard"
          << (name == pattern ? "" : " (from the pattern '" + pattern + "')");
      files.push_back(name);
      continue;
    }
    const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    RUCHE_REQUIRE(fs::is_directory(dir)) << name << ": no directory " << dir.string();
    std::vector<std::string> found;
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      const std::string f = e.path().filename().string();
      if (e.is_regular_file() && ::fnmatch(base.c_str(), f.c_str(), FNM_PERIOD) == 0) {
        found.push_back((p.parent_path() / f).string());
      }
    }
    RUCHE_REQUIRE(!found.empty()) << name << ": no file matches";
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

bool names_shards(const std::string& data) {
  if (data.empty() || data == "synthetic") return false;
  std::error_code ec;
  if (fs::is_directory(data, ec)) {
    if (fs::is_regular_file(fs::path(data) / kShardIndexFile, ec)) return true;
    if (fs::is_directory(fs::path(data) / "train", ec)) return false;  // an ImageFolder
    for (const fs::directory_entry& e : fs::directory_iterator(data, ec)) {
      const std::string name = e.path().filename().string();
      if (name[0] != '.' && name.ends_with(".tar")) return true;
    }
    return false;
  }
  const std::vector<std::string> names = expand_braces(data);
  return names.front().ends_with(".tar");
}

namespace {

// The index of `dir`, built first when it has none or lacks one of `need` (file names).
ShardIndex index_for(const std::string& dir, const std::vector<std::string>& need,
                     const ShardSetOptions& o) {
  std::FILE* log = o.rank == 0 ? o.log : nullptr;
  std::string why;
  if (fs::is_regular_file(fs::path(dir) / kShardIndexFile)) {
    ShardIndex index = read_shard_index(dir);
    std::set<std::string> have;
    for (const ShardInfo& s : index.shards) have.insert(s.file);
    std::size_t missing = 0;
    for (const std::string& f : need) missing += have.count(f) ? 0 : 1;
    if (missing == 0) return index;
    why = "its index.tsv lacks " + std::to_string(missing) + " of the shards named";
  } else {
    why = "it has no index.tsv";
  }
  const bool writable = ::access(dir.c_str(), W_OK) == 0;
  say(log, "data: ",
      dir + ": " + why + "; indexing its shards now, " +
          (writable ? "once (`ruche index " + dir + "` does it ahead)"
                    : "in memory (the directory is read-only: every run indexes)"));
  IndexOptions io;
  io.dir = dir;
  io.workers = o.workers;
  io.write = o.rank == 0 && writable;
  io.log = log;
  io.prefix = "data: index: ";
  ShardIndex index = index_shards(io);
  std::set<std::string> have;
  for (const ShardInfo& s : index.shards) have.insert(s.file);
  for (const std::string& f : need) {
    RUCHE_REQUIRE(have.count(f)) << (fs::path(dir) / f).string() << ": not a shard of " << dir;
  }
  return index;
}

struct Named {
  std::string dir;                 // the directory of the shards
  std::vector<std::string> files;  // their names in it; empty: the whole directory
};

Named resolve(const std::string& value, const std::string& flag) {
  if (fs::is_directory(value)) return {value, {}};
  Named n;
  for (const std::string& f : expand_shard_pattern(value)) {
    RUCHE_REQUIRE(f.ends_with(".tar"))
        << flag << " " << value << ": " << f << " is not a .tar shard";
    const fs::path p(f);
    const std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
    if (n.files.empty()) n.dir = dir;
    RUCHE_REQUIRE(fs::equivalent(dir, n.dir))
        << flag << " " << value << ": the shards lie in " << n.dir << " and " << dir
        << "; one directory per flag";
    n.files.push_back(p.filename().string());
  }
  return n;
}

std::vector<ShardInfo> pick(const ShardIndex& index, const std::vector<std::string>& files) {
  std::map<std::string, const ShardInfo*> by_file;
  for (const ShardInfo& s : index.shards) by_file[s.file] = &s;
  std::vector<ShardInfo> out;
  out.reserve(files.size());
  for (const std::string& f : files) out.push_back(*by_file.at(f));
  return out;
}

}  // namespace

ShardIndex open_shard_set(const std::string& data, const std::string& val_data,
                          const ShardSetOptions& o) {
  const Named train = resolve(data, "--data");
  const ShardIndex train_index = index_for(train.dir, train.files, o);
  ShardIndex set;
  set.dir = train.dir;
  set.classes = train_index.classes;
  std::vector<ShardInfo> train_shards =
      train.files.empty() ? train_index.split("train") : pick(train_index, train.files);
  std::vector<ShardInfo> val_shards;
  std::string val_dir = train.dir;
  if (!val_data.empty()) {
    const Named val = resolve(val_data, "--val-data");
    const ShardIndex val_index = fs::equivalent(val.dir, train.dir) && val.files.empty()
                                     ? train_index
                                     : index_for(val.dir, val.files, o);
    if (!val.files.empty()) {
      val_shards = pick(val_index, val.files);
    } else {
      val_shards = val_index.split("val");
      if (val_shards.empty()) val_shards = val_index.shards;
    }
    RUCHE_REQUIRE(val_index.classes.size() <= set.classes.size() || just_numbers(val_index.classes))
        << "--val-data " << val_data << ": its shards have " << val_index.classes.size()
        << " classes, the training shards " << set.classes.size();
    RUCHE_REQUIRE(
        just_numbers(val_index.classes) ||
        std::equal(val_index.classes.begin(), val_index.classes.end(), set.classes.begin()))
        << "--val-data " << val_data << ": its class names (" << val.dir
        << "/labels.txt) differ from the training shards' (" << train.dir << "/labels.txt)";
    val_dir = val.dir;
  } else if (train.files.empty()) {
    val_shards = train_index.split("val");
  } else {
    const std::set<std::string> trained(train.files.begin(), train.files.end());
    for (const ShardInfo& s : train_index.split("val")) {
      if (!trained.count(s.file)) val_shards.push_back(s);
    }
  }
  for (ShardInfo& s : train_shards) {
    s.split = "train";
    set.shards.push_back(std::move(s));
  }
  const bool same_dir = fs::equivalent(val_dir, train.dir);
  for (ShardInfo& s : val_shards) {
    s.split = "val";
    if (!same_dir) s.file = fs::absolute(fs::path(val_dir) / s.file).string();
    set.shards.push_back(std::move(s));
  }
  return set;
}

}  // namespace ruche
