#include "engine/data/convert.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "engine/checkpoint/file_io.h"
#include "engine/data/jpeg.h"
#include "engine/data/sampler.h"
#include "engine/data/shard_index.h"
#include "engine/data/tar.h"
#include "engine/error.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

struct PlannedImage {
  std::string path;  // as found under SRC
  std::string key;
  int cls = 0;
  std::uint64_t size = 0;
};

struct PlannedShard {
  std::string split, file;
  std::vector<PlannedImage> images;
};

// What writing (or finding) one shard gave.
struct ShardResult {
  ShardInfo info;
  std::vector<SkippedImage> skipped;
  std::uint64_t bytes = 0;
  bool reused = false;
};

std::vector<std::string> sorted_subdirectories(const fs::path& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name[0] != '.' && e.is_directory()) names.push_back(name);
  }
  std::sort(names.begin(),
            names.end());  // byte order: Python's sorted() on UTF-8 names
  return names;
}

// WebDataset cuts a member name at the first '.' of its base name; '/' would
// make a folder.
std::string key_of(const std::string& relative) {
  const fs::path p(relative);
  std::string key = (p.parent_path() / p.stem()).generic_string();
  std::replace(key.begin(), key.end(), '/', '_');
  std::replace(key.begin(), key.end(), '.', '_');
  return key;
}

// Every candidate image of one split folder, in (class, relative path) order.
std::vector<PlannedImage> list_split(const fs::path& root, const std::vector<std::string>& classes,
                                     const std::string& split) {
  std::map<std::string, int> class_index;
  for (std::size_t i = 0; i < classes.size(); ++i) class_index[classes[i]] = static_cast<int>(i);
  std::vector<PlannedImage> images;
  for (const std::string& name : sorted_subdirectories(root)) {
    const auto found = class_index.find(name);
    RUCHE_REQUIRE(found != class_index.end())
        << (root / name).string() << ": class folder of " << split << " not among train's "
        << classes.size() << " classes";
    std::vector<PlannedImage> in_class;
    const auto options = fs::directory_options::follow_directory_symlink;
    for (const fs::directory_entry& e : fs::recursive_directory_iterator(root / name, options)) {
      const std::string base = e.path().filename().string();
      if (base[0] == '.' || !e.is_regular_file()) continue;
      const std::string relative = fs::relative(e.path(), root).generic_string();
      if (relative.find("/.") != std::string::npos) continue;  // inside a hidden folder
      in_class.push_back({e.path().string(), key_of(relative), found->second, e.file_size()});
    }
    std::sort(in_class.begin(), in_class.end(),
              [](const PlannedImage& a, const PlannedImage& b) { return a.path < b.path; });
    images.insert(images.end(), in_class.begin(), in_class.end());
  }
  std::map<std::string, const PlannedImage*> keys;
  for (const PlannedImage& im : images) {
    RUCHE_REQUIRE(im.key.size() + 4 <= 100)
        << im.path << ": its shard key '" << im.key << "' is over 96 bytes (tar names hold 100)";
    const auto [it, fresh] = keys.emplace(im.key, &im);
    RUCHE_REQUIRE(fresh) << im.path << " and " << it->second->path << " have the same shard key '"
                         << im.key << "'; rename one";
  }
  return images;
}

std::vector<PlannedShard> plan_split(std::vector<PlannedImage> images, const std::string& split,
                                     const ConvertOptions& o, int split_number) {
  if (o.shuffle) {
    std::vector<std::int64_t> order(images.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
    shuffle_in_place(order, RngStream{o.seed, RngPurpose::sampler, 0,
                                      static_cast<std::uint32_t>(split_number), 1});
    std::vector<PlannedImage> shuffled;
    shuffled.reserve(images.size());
    for (std::int64_t i : order) shuffled.push_back(std::move(images[static_cast<std::size_t>(i)]));
    images = std::move(shuffled);
  }
  const auto budget = static_cast<std::uint64_t>(o.shard_mb * 1e6);
  std::vector<PlannedShard> shards;
  std::uint64_t used = 0;
  for (PlannedImage& im : images) {
    const std::uint64_t bytes = tar_member_bytes(im.size) + tar_member_bytes(8);
    if (shards.empty() || (used + bytes > budget && !shards.back().images.empty())) {
      char name[64];
      std::snprintf(name, sizeof name, "%s-%06zu.tar", split.c_str(), shards.size());
      shards.push_back({split, name, {}});
      used = 0;
    }
    shards.back().images.push_back(std::move(im));
    used += bytes;
  }
  return shards;
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("read failed");
  return bytes;
}

// Weights of a triangle filter stretched over the input pixels one output pixel
// covers (antialiased bilinear, as PIL's resize): out[o] = sum_k w[o][k] *
// in[first[o] + k].
struct Taps {
  std::vector<int> first;
  std::vector<std::vector<float>> w;
};

Taps triangle_taps(int in, int out) {
  const double scale = static_cast<double>(in) / out, support = std::max(1.0, scale);
  Taps t;
  for (int o = 0; o < out; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(std::floor(center - support)));
    const int hi = std::min(in, static_cast<int>(std::ceil(center + support)));
    std::vector<float> w;
    double sum = 0;
    for (int i = lo; i < hi; ++i) {
      const double x = std::max(0.0, 1.0 - std::abs((i + 0.5 - center) / support));
      w.push_back(static_cast<float>(x));
      sum += x;
    }
    for (float& x : w) x = static_cast<float>(x / sum);
    t.first.push_back(lo);
    t.w.push_back(std::move(w));
  }
  return t;
}

// `image` (RGB, possibly decoded at a reduced DCT scale) resized to width x
// height.
Image8 resize_image(const Image8& image, int width, int height) {
  const int w = image.width, h = image.height, c = image.channels;
  Image8 out;
  out.width = width;
  out.height = height;
  out.channels = c;
  out.pixels.resize(static_cast<std::size_t>(out.width) * out.height * c);
  const Taps tx = triangle_taps(w, out.width), ty = triangle_taps(h, out.height);
  std::vector<float> rows(static_cast<std::size_t>(h) * out.width * c);  // horizontal pass
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* in = image.row(y);
    float* r = rows.data() + static_cast<std::size_t>(y) * out.width * c;
    for (int x = 0; x < out.width; ++x) {
      for (int ch = 0; ch < c; ++ch) {
        float v = 0;
        for (std::size_t k = 0; k < tx.w[x].size(); ++k) {
          v += tx.w[x][k] * in[(tx.first[x] + static_cast<int>(k)) * c + ch];
        }
        r[x * c + ch] = v;
      }
    }
  }
  const std::size_t stride = static_cast<std::size_t>(out.width) * c;
  for (int y = 0; y < out.height; ++y) {
    std::uint8_t* o = out.row(y);
    for (std::size_t i = 0; i < stride; ++i) {
      float v = 0;
      for (std::size_t k = 0; k < ty.w[y].size(); ++k) {
        v += ty.w[y][k] *
             rows[static_cast<std::size_t>(ty.first[y] + static_cast<int>(k)) * stride + i];
      }
      o[i] = static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
  }
  return out;
}

// The JPEG bytes to store for one image: checked by decoding, re-encoded when
// resize_short asks. Throws ruche::Error (the reason) when the image is
// unreadable.
std::string image_bytes(const PlannedImage& im, const ConvertOptions& o) {
  std::string bytes;
  try {
    bytes = read_whole(im.path);
  } catch (const Error& e) {
    throw Error(im.path + ": " + e.what());
  }
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  if (o.resize_short <= 0) {
    decode_jpeg_rgb(data, bytes.size(), im.path,
                    1);  // 1/8 scale: still reads every byte
    return bytes;
  }
  // Decode at the smallest DCT scale that keeps the short side at least
  // resize_short.
  const int n = o.resize_short;
  bool larger = false;
  int width = 0,
      height = 0;  // the output, from the full-size header (exact aspect ratio)
  const Image8 image = decode_jpeg_rgb(data, bytes.size(), im.path, [&](const JpegInfo& info) {
    const int short_side = std::min(info.width, info.height);
    larger = short_side > n;
    if (!larger) return 1;
    const double scale = static_cast<double>(n) / short_side;
    width = info.width == short_side ? n : static_cast<int>(std::lround(info.width * scale));
    height = info.width == short_side ? static_cast<int>(std::lround(info.height * scale)) : n;
    for (int s = 1; s < 8; ++s) {
      if (std::min(jpeg_scaled_size(info.width, s), jpeg_scaled_size(info.height, s)) >= n) {
        return s;
      }
    }
    return 8;
  });
  if (!larger) return bytes;
  const std::vector<std::uint8_t> jpeg = encode_jpeg(resize_image(image, width, height), o.quality);
  return std::string(jpeg.begin(), jpeg.end());
}

// Reads a complete shard's members back (headers only) and checks its keys
// follow the plan; planned images missing from it were unreadable when it was
// written.
ShardResult reuse_shard(const PlannedShard& plan, const std::string& path) {
  ShardResult r;
  r.reused = true;
  r.info.split = plan.split;
  r.info.file = plan.file;
  TarReader reader(path);
  TarMember m;
  std::uint64_t size = 0;
  std::size_t next = 0;  // the planned image to match next
  const auto stale = [&](const std::string& why) {
    return Error(path + ": " + why + "; it was written from other files or options (remove it)");
  };
  while (reader.next_header(&m, &size)) {
    const std::string key = m.name.substr(0, m.name.find('.'));
    if (m.name == key + ".jpg") {
      while (next < plan.images.size() && plan.images[next].key != key) {
        r.skipped.push_back({plan.images[next++].path, "unreadable when its shard was written"});
      }
      if (next == plan.images.size()) throw stale("'" + m.name + "' is not in the plan");
      ++next;
      r.info.offsets.push_back(m.offset);
    } else if (m.name != key + ".cls") {
      throw stale("unexpected member '" + m.name + "'");
    }
  }
  for (; next < plan.images.size(); ++next) {
    r.skipped.push_back({plan.images[next].path, "unreadable when its shard was written"});
  }
  r.info.end = reader.offset();
  r.bytes = reader.file_size();
  return r;
}

ShardResult write_shard(const PlannedShard& plan, const std::string& path,
                        const ConvertOptions& o) {
  ShardResult r;
  r.info.split = plan.split;
  r.info.file = plan.file;
  const std::string tmp = path + ".tmp";
  {
    TarWriter tar(tmp);
    for (const PlannedImage& im : plan.images) {
      std::string jpeg;
      try {
        jpeg = image_bytes(im, o);
      } catch (const Error& e) {
        std::string reason = e.what();
        if (reason.rfind(im.path + ": ", 0) == 0) reason.erase(0, im.path.size() + 2);
        r.skipped.push_back({im.path, reason});
        continue;
      }
      const std::string cls = std::to_string(im.cls);
      r.info.offsets.push_back(tar.add(im.key + ".jpg", jpeg.data(), jpeg.size()));
      tar.add(im.key + ".cls", cls.data(), cls.size());
    }
    r.info.end = tar.bytes();
    tar.finish();
    r.bytes = tar.bytes();
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  RUCHE_REQUIRE(!ec) << tmp << ": cannot rename to " << path << " (" << ec.message() << ")";
  return r;
}

// The options a shard directory was made with; a rerun must use the same ones.
std::string options_text(const ConvertOptions& o) {
  std::ostringstream s;
  s << "source\t" << fs::absolute(o.source).lexically_normal().string() << "\n"
    << "shard_mb\t" << o.shard_mb << "\n"
    << "resize_short\t" << o.resize_short << "\n"
    << "quality\t" << (o.resize_short > 0 ? o.quality : 0) << "\n"
    << "shuffle\t" << (o.shuffle ? 1 : 0) << "\n"
    << "seed\t" << o.seed << "\n";
  return s.str();
}

void say(const ConvertOptions& o, const std::string& text) {
  if (!o.log) return;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::fprintf(o.log, "convert: %s\n", line.c_str());
  }
}

std::string megabytes(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

}  // namespace

std::string ConvertSummary::text() const {
  char line[256];
  std::snprintf(line, sizeof line,
                "%lld images, %d classes, %d shards (%d complete before, "
                "reused), %zu skipped, "
                "%s, %.1f s",
                static_cast<long long>(images), classes, shards, shards_reused, skipped.size(),
                megabytes(bytes).c_str(), seconds);
  std::string out = line;
  for (const SkippedImage& s : skipped) out += "\nskipped " + s.path + ": " + s.reason;
  return out;
}

ConvertSummary convert_imagefolder(const ConvertOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  RUCHE_REQUIRE(o.shard_mb > 0) << "--shard-mb " << o.shard_mb << ": expected > 0";
  RUCHE_REQUIRE(o.resize_short >= 0) << "--resize-short " << o.resize_short << ": expected >= 0";
  RUCHE_REQUIRE(o.quality >= 1 && o.quality <= 100) << "quality " << o.quality << ": 1..100";
  RUCHE_REQUIRE(!o.out.empty()) << "convert: -o SHARDS is required";
  const fs::path src(o.source);
  RUCHE_REQUIRE(fs::is_directory(src)) << o.source << ": not a directory";

  // ---- layout and classes ----
  std::vector<std::pair<std::string, fs::path>> splits;  // name, folder
  if (fs::is_directory(src / "train")) {
    splits.emplace_back("train", src / "train");
    if (fs::is_directory(src / "val")) splits.emplace_back("val", src / "val");
  } else {
    splits.emplace_back("train", src);
  }
  const std::vector<std::string> classes = sorted_subdirectories(splits[0].second);
  RUCHE_REQUIRE(!classes.empty()) << splits[0].second.string()
                                  << ": no class folders (expected <class>/<image> inside)";

  // ---- plan ----
  std::vector<PlannedShard> plan;
  std::int64_t candidates = 0;
  for (std::size_t i = 0; i < splits.size(); ++i) {
    std::vector<PlannedImage> images = list_split(splits[i].second, classes, splits[i].first);
    RUCHE_REQUIRE(!images.empty()) << splits[i].second.string() << ": no images";
    candidates += static_cast<std::int64_t>(images.size());
    // cppcheck-suppress accessMoved ; images is the loop body's own, a new one each split
    for (PlannedShard& s : plan_split(std::move(images), splits[i].first, o, static_cast<int>(i)))
      plan.push_back(std::move(s));
  }

  checkpoint_io::make_directories(o.out);
  const std::string options_path = (fs::path(o.out) / "convert-options.tsv").string();
  const std::string options = options_text(o);
  if (fs::exists(options_path)) {
    RUCHE_REQUIRE(checkpoint_io::read_file(options_path) == options)
        << o.out << " holds shards converted with other options (" << options_path
        << "); convert into another directory or remove it";
  } else {
    checkpoint_io::write_file_durably(options_path, options);
  }
  say(o, std::to_string(candidates) + " files, " + std::to_string(classes.size()) + " classes, " +
             std::to_string(plan.size()) + " shards to " + o.out);

  // ---- workers take whole shards ----
  std::vector<ShardResult> results(plan.size());
  std::atomic<std::size_t> next_shard{0};
  std::mutex mutex;  // the log, the tallies and the first error
  std::exception_ptr error;
  std::size_t done = 0;
  std::int64_t images_done = 0;
  std::uint64_t bytes_done = 0;
  const auto work = [&] {
    for (std::size_t i; (i = next_shard++) < plan.size();) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (error) return;
      }
      try {
        const std::string path = (fs::path(o.out) / plan[i].file).string();
        results[i] = fs::exists(path) ? reuse_shard(plan[i], path) : write_shard(plan[i], path, o);
        const ShardResult& r = results[i];
        std::lock_guard<std::mutex> lock(mutex);
        ++done;
        images_done += r.info.samples();
        bytes_done += r.bytes;
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        char line[256];
        std::snprintf(line, sizeof line,
                      "[%zu/%zu] %s %s: %lld images, %zu skipped, %s (%.0f img/s)", done,
                      plan.size(), plan[i].file.c_str(), r.reused ? "complete, reused" : "written",
                      static_cast<long long>(r.info.samples()), r.skipped.size(),
                      megabytes(r.bytes).c_str(), static_cast<double>(images_done) / s);
        say(o, line);
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
  for (int t = 0; t < std::min<int>(workers, static_cast<int>(plan.size())); ++t)
    threads.emplace_back(work);
  for (std::thread& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  checkpoint_io::fsync_directory(o.out);

  // ---- index and summary ----
  ShardIndex index;
  index.dir = o.out;
  index.classes = classes;
  ConvertSummary summary;
  summary.classes = static_cast<int>(classes.size());
  summary.shards = static_cast<int>(plan.size());
  for (ShardResult& r : results) {
    summary.images += r.info.samples();
    summary.shards_reused += r.reused ? 1 : 0;
    summary.bytes += r.bytes;
    summary.skipped.insert(summary.skipped.end(), r.skipped.begin(), r.skipped.end());
    index.shards.push_back(std::move(r.info));
  }
  write_shard_index(index);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  say(o, summary.text());
  return summary;
}

}  // namespace ruche
