#include "engine/tensor/npz.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/tensor/npy.h"

namespace ruche {
namespace {

// Zip record signatures and sizes (PKWARE APPNOTE 6.3).
constexpr std::uint32_t kLocalSig = 0x04034b50;
constexpr std::uint32_t kCentralSig = 0x02014b50;
constexpr std::uint32_t kEndSig = 0x06054b50;
constexpr std::uint32_t kZip64EndSig = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSig = 0x07064b50;
constexpr std::size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22;
constexpr std::size_t kZip64EndSize = 56, kZip64LocatorSize = 20;
constexpr std::uint64_t kMax16 = 0xffff, kMax32 = 0xffffffff;
constexpr std::uint16_t kZip64ExtraId = 0x0001;
constexpr std::uint16_t kDosDate1980 = (1 << 5) | 1;  // 1980-01-01: archives are reproducible

std::uint64_t get_le(const std::string& b, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  }
  return v;
}

void put_le(std::string& b, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint32_t crc_of(const std::string& bytes) {
  return static_cast<std::uint32_t>(
      crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

// ---- reading ----

struct Entry {
  std::string name;  // as stored, with ".npy"
  std::uint16_t flags = 0, method = 0;
  std::uint32_t crc = 0;
  std::uint64_t compressed = 0, size = 0, local_offset = 0;
};

class ZipFile {
 public:
  explicit ZipFile(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    RUCHE_REQUIRE(in_) << path << ": cannot open";
    in_.seekg(0, std::ios::end);
    size_ = static_cast<std::uint64_t>(in_.tellg());
  }

  // `n` bytes at `offset`; `what` names them when the file ends first.
  std::string read_at(std::uint64_t offset, std::uint64_t n, const std::string& what) {
    RUCHE_REQUIRE(offset <= size_ && n <= size_ - offset)
        << path_ << ": truncated " << what << " (needs bytes " << offset << ".." << offset + n
        << " of a " << size_ << "-byte file)";
    std::string b(n, '\0');
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(b.data(), static_cast<std::streamsize>(n));
    RUCHE_REQUIRE(in_.good()) << path_ << ": read failed (" << what << ")";
    return b;
  }

  std::vector<Entry> entries();
  std::string member_bytes(const Entry& e);

 private:
  std::uint64_t find_end_record(std::string& end);
  std::string inflate_member(const std::string& compressed, const Entry& e);

  std::string path_;
  std::ifstream in_;
  std::uint64_t size_ = 0;
};

// The position of the end-of-central-directory record (its bytes into `end`).
std::uint64_t ZipFile::find_end_record(std::string& end) {
  RUCHE_REQUIRE(size_ >= kEndSize) << path_ << ": not an npz (zip) file: too short";
  const std::uint64_t tail_size = std::min<std::uint64_t>(size_, kEndSize + kMax16);
  const std::string tail = read_at(size_ - tail_size, tail_size, "end of archive");
  for (std::size_t at = tail_size - kEndSize + 1; at-- > 0;) {
    if (get_le(tail, at, 4) == kEndSig) {
      end = tail.substr(at, kEndSize);
      return size_ - tail_size + at;
    }
  }
  RUCHE_FAIL() << path_ << ": not an npz (zip) file, or truncated: no end of central directory";
}

std::vector<Entry> ZipFile::entries() {
  std::string end;
  const std::uint64_t end_at = find_end_record(end);
  std::uint64_t count = get_le(end, 10, 2);
  std::uint64_t cd_size = get_le(end, 12, 4);
  std::uint64_t cd_offset = get_le(end, 16, 4);
  if (count == kMax16 || cd_size == kMax32 || cd_offset == kMax32) {  // zip64
    RUCHE_REQUIRE(end_at >= kZip64LocatorSize) << path_ << ": missing zip64 locator";
    const std::string loc = read_at(end_at - kZip64LocatorSize, kZip64LocatorSize, "zip64 locator");
    RUCHE_REQUIRE(get_le(loc, 0, 4) == kZip64LocatorSig) << path_ << ": bad zip64 locator";
    const std::string z = read_at(get_le(loc, 8, 8), kZip64EndSize, "zip64 end record");
    RUCHE_REQUIRE(get_le(z, 0, 4) == kZip64EndSig) << path_ << ": bad zip64 end record";
    count = get_le(z, 32, 8);
    cd_size = get_le(z, 40, 8);
    cd_offset = get_le(z, 48, 8);
  }
  RUCHE_REQUIRE(cd_offset <= end_at && cd_size <= end_at - cd_offset)
      << path_ << ": truncated or corrupt central directory (" << cd_size << " bytes at "
      << cd_offset << ", end record at " << end_at << ")";
  const std::string cd = read_at(cd_offset, cd_size, "central directory");

  std::vector<Entry> out;
  std::size_t at = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    RUCHE_REQUIRE(at + kCentralSize <= cd.size() && get_le(cd, at, 4) == kCentralSig)
        << path_ << ": truncated or corrupt central directory (entry " << i << " of " << count
        << ")";
    Entry e;
    e.flags = static_cast<std::uint16_t>(get_le(cd, at + 8, 2));
    e.method = static_cast<std::uint16_t>(get_le(cd, at + 10, 2));
    e.crc = static_cast<std::uint32_t>(get_le(cd, at + 16, 4));
    e.compressed = get_le(cd, at + 20, 4);
    e.size = get_le(cd, at + 24, 4);
    e.local_offset = get_le(cd, at + 42, 4);
    const std::size_t name_len = get_le(cd, at + 28, 2), extra_len = get_le(cd, at + 30, 2);
    const std::size_t comment_len = get_le(cd, at + 32, 2);
    const std::size_t record = kCentralSize + name_len + extra_len + comment_len;
    RUCHE_REQUIRE(at + record <= cd.size())
        << path_ << ": truncated or corrupt central directory (entry " << i << ")";
    e.name = cd.substr(at + kCentralSize, name_len);
    // Zip64 extra field: the 64-bit values of the fields stored as 0xffffffff,
    // in this order.
    for (std::size_t x = at + kCentralSize + name_len;
         x + 4 <= at + kCentralSize + name_len + extra_len;) {
      const std::uint64_t id = get_le(cd, x, 2), len = get_le(cd, x + 2, 2);
      if (id == kZip64ExtraId) {
        std::size_t v = x + 4;
        for (std::uint64_t* field : {&e.size, &e.compressed, &e.local_offset}) {
          if (*field != kMax32) continue;
          RUCHE_REQUIRE(v + 8 <= x + 4 + len) << path_ << ": corrupt zip64 field of " << e.name;
          *field = get_le(cd, v, 8);
          v += 8;
        }
      }
      x += 4 + len;
    }
    out.push_back(std::move(e));
    at += record;
  }
  return out;
}

std::string ZipFile::inflate_member(const std::string& compressed, const Entry& e) {
  // Deflate expands at most ~1032x: a larger declared size is a corrupt
  // directory, not a reason to allocate it.
  RUCHE_REQUIRE(e.size <= compressed.size() * 1032 + 1024)
      << path_ << ": member '" << e.name << "' declares an impossible size " << e.size;
  std::string out(e.size, '\0');
  z_stream zs{};
  RUCHE_CHECK(inflateInit2(&zs, -MAX_WBITS) == Z_OK) << "inflateInit2";
  constexpr std::size_t kChunk = std::size_t{1} << 30;  // avail_in/out are 32-bit
  std::size_t in_pos = 0, out_pos = 0;
  int ret = Z_OK;
  while (ret != Z_STREAM_END) {
    if (zs.avail_in == 0 && in_pos < compressed.size()) {
      const std::size_t n = std::min(kChunk, compressed.size() - in_pos);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + in_pos));
      zs.avail_in = static_cast<uInt>(n);
      in_pos += n;
    }
    if (zs.avail_out == 0 && out_pos < out.size()) {
      const std::size_t n = std::min(kChunk, out.size() - out_pos);
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_pos);
      zs.avail_out = static_cast<uInt>(n);
      out_pos += n;
    }
    ret = inflate(&zs, Z_NO_FLUSH);
    if (ret != Z_OK && ret != Z_STREAM_END) {
      const std::string msg = zs.msg ? zs.msg : ret == Z_BUF_ERROR ? "data ends early" : "error";
      inflateEnd(&zs);
      RUCHE_FAIL() << path_ << ": member '" << e.name << "': corrupt deflate data (" << msg << ")";
    }
  }
  const std::uint64_t produced = zs.total_out;
  inflateEnd(&zs);
  RUCHE_REQUIRE(produced == e.size) << path_ << ": member '" << e.name << "' inflates to "
                                    << produced << " bytes, the directory says " << e.size;
  return out;
}

std::string ZipFile::member_bytes(const Entry& e) {
  RUCHE_REQUIRE((e.flags & 1) == 0) << path_ << ": member '" << e.name << "' is encrypted";
  const std::string local = read_at(e.local_offset, kLocalSize, "local header of " + e.name);
  RUCHE_REQUIRE(get_le(local, 0, 4) == kLocalSig)
      << path_ << ": corrupt local header of member '" << e.name << "'";
  // Sizes come from the central directory: numpy writes 0xffffffff (zip64) in
  // local headers.
  const std::uint64_t data_at =
      e.local_offset + kLocalSize + get_le(local, 26, 2) + get_le(local, 28, 2);
  std::string data = read_at(data_at, e.compressed, "data of member '" + e.name + "'");
  if (e.method == 8) {
    data = inflate_member(data, e);
  } else {
    RUCHE_REQUIRE(e.method == 0) << path_ << ": member '" << e.name
                                 << "' uses zip compression method " << e.method
                                 << " (only stored and deflate are supported)";
    RUCHE_REQUIRE(e.compressed == e.size)
        << path_ << ": member '" << e.name << "' is stored with mismatched sizes";
  }
  RUCHE_REQUIRE(crc_of(data) == e.crc)
      << path_ << ": member '" << e.name << "' is corrupt (CRC32 mismatch)";
  return data;
}

bool is_array_member(const std::string& name, const std::string& path) {
  if (!name.empty() && name.back() == '/') return false;  // a directory entry
  RUCHE_REQUIRE(name.size() > 4 && name.ends_with(".npy"))
      << path << ": member '" << name << "' is not an .npy array";
  return true;
}

// ---- writing ----

// A file written through a descriptor so it can be fsynced; removed unless
// committed.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    RUCHE_REQUIRE(fd_ >= 0) << path_ << ": cannot write (" << std::strerror(errno) << ")";
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  std::uint64_t position() const { return position_; }
  void write(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      RUCHE_REQUIRE(n > 0) << path_ << ": write failed (" << std::strerror(errno) << ")";
      done += static_cast<std::size_t>(n);
    }
    position_ += bytes.size();
  }
  // fsync, close, rename over `target`, fsync the directory.
  void commit(const std::string& target) {
    RUCHE_REQUIRE(::fsync(fd_) == 0) << path_ << ": fsync failed (" << std::strerror(errno) << ")";
    const int rc = ::close(fd_);
    fd_ = -1;
    RUCHE_REQUIRE(rc == 0) << path_ << ": close failed (" << std::strerror(errno) << ")";
    RUCHE_REQUIRE(std::rename(path_.c_str(), target.c_str()) == 0)
        << target << ": cannot rename " << path_ << " over it (" << std::strerror(errno) << ")";
    committed_ = true;
    const std::filesystem::path dir = std::filesystem::path(target).parent_path();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {  // best effort: some filesystems refuse to fsync a directory
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t position_ = 0;
  bool committed_ = false;
};

struct Written {
  std::string name;
  std::uint32_t crc;
  std::uint64_t size, offset;
};

std::uint16_t name_flags(const std::string& name) {
  const bool ascii = std::all_of(name.begin(), name.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  return ascii ? 0 : (1 << 11);  // bit 11: the name is UTF-8
}

std::string local_header(const Written& w) {
  const bool zip64 = w.size >= kMax32;
  std::string h;
  put_le(h, kLocalSig, 4);
  put_le(h, zip64 ? 45 : 20, 2);  // version needed
  put_le(h, name_flags(w.name), 2);
  put_le(h, 0, 2);  // stored
  put_le(h, 0, 2);  // time
  put_le(h, kDosDate1980, 2);
  put_le(h, w.crc, 4);
  put_le(h, zip64 ? kMax32 : w.size, 4);
  put_le(h, zip64 ? kMax32 : w.size, 4);
  put_le(h, w.name.size(), 2);
  put_le(h, zip64 ? 20 : 0, 2);
  h += w.name;
  if (zip64) {
    put_le(h, kZip64ExtraId, 2);
    put_le(h, 16, 2);
    put_le(h, w.size, 8);
    put_le(h, w.size, 8);
  }
  return h;
}

std::string central_header(const Written& w) {
  const bool big_size = w.size >= kMax32, big_offset = w.offset >= kMax32;
  std::string extra;
  if (big_size || big_offset) {
    put_le(extra, kZip64ExtraId, 2);
    put_le(extra, (big_size ? 16 : 0) + (big_offset ? 8 : 0), 2);
    if (big_size) {
      put_le(extra, w.size, 8);
      put_le(extra, w.size, 8);
    }
    if (big_offset) put_le(extra, w.offset, 8);
  }
  const int version = extra.empty() ? 20 : 45;
  std::string h;
  put_le(h, kCentralSig, 4);
  put_le(h, version, 2);  // made by
  put_le(h, version, 2);  // needed
  put_le(h, name_flags(w.name), 2);
  put_le(h, 0, 2);  // stored
  put_le(h, 0, 2);
  put_le(h, kDosDate1980, 2);
  put_le(h, w.crc, 4);
  put_le(h, big_size ? kMax32 : w.size, 4);
  put_le(h, big_size ? kMax32 : w.size, 4);
  put_le(h, w.name.size(), 2);
  put_le(h, extra.size(), 2);
  put_le(h, 0, 2);  // comment
  put_le(h, 0, 2);  // disk
  put_le(h, 0, 2);  // internal attributes
  put_le(h, 0, 4);  // external attributes
  put_le(h, big_offset ? kMax32 : w.offset, 4);
  return h + w.name + extra;
}

std::string end_records(std::uint64_t count, std::uint64_t cd_offset, std::uint64_t cd_size) {
  std::string r;
  if (count >= kMax16 || cd_offset >= kMax32 || cd_size >= kMax32) {
    const std::uint64_t zip64_end_at = cd_offset + cd_size;
    put_le(r, kZip64EndSig, 4);
    put_le(r, kZip64EndSize - 12, 8);  // size of the rest of the record
    put_le(r, 45, 2);
    put_le(r, 45, 2);
    put_le(r, 0, 4);
    put_le(r, 0, 4);
    put_le(r, count, 8);
    put_le(r, count, 8);
    put_le(r, cd_size, 8);
    put_le(r, cd_offset, 8);
    put_le(r, kZip64LocatorSig, 4);
    put_le(r, 0, 4);
    put_le(r, zip64_end_at, 8);
    put_le(r, 1, 4);  // disks
  }
  put_le(r, kEndSig, 4);
  put_le(r, 0, 2);
  put_le(r, 0, 2);
  put_le(r, std::min(count, kMax16), 2);
  put_le(r, std::min(count, kMax16), 2);
  put_le(r, std::min(cd_size, kMax32), 4);
  put_le(r, std::min(cd_offset, kMax32), 4);
  put_le(r, 0, 2);  // comment
  return r;
}

}  // namespace

std::vector<std::string> list_npz(const std::string& path) {
  ZipFile zip(path);
  std::vector<std::string> names;
  for (const Entry& e : zip.entries()) {
    if (is_array_member(e.name, path)) names.push_back(e.name.substr(0, e.name.size() - 4));
  }
  return names;
}

std::map<std::string, Tensor> load_npz(const std::string& path) {
  ZipFile zip(path);
  std::map<std::string, Tensor> arrays;
  for (const Entry& e : zip.entries()) {
    if (!is_array_member(e.name, path)) continue;
    const std::string key = e.name.substr(0, e.name.size() - 4);
    RUCHE_REQUIRE(!arrays.contains(key)) << path << ": member '" << e.name << "' appears twice";
    arrays.emplace(key, parse_npy(zip.member_bytes(e), path + ": member '" + e.name + "'"));
  }
  return arrays;
}

void save_npz(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& arrays) {
  std::set<std::string> seen;
  for (const auto& [name, t] : arrays) {
    RUCHE_REQUIRE(!name.empty()) << path << ": an npz array needs a name";
    RUCHE_REQUIRE(seen.insert(name).second) << path << ": array '" << name << "' given twice";
    RUCHE_REQUIRE(t.defined()) << path << ": array '" << name << "' is an undefined tensor";
    RUCHE_REQUIRE(name.size() + 4 < kMax16) << path << ": array name too long";
  }
  TempFile file(path + ".tmp");
  std::vector<Written> written;
  for (const auto& [name, t] : arrays) {
    const std::string bytes = to_npy(t);
    Written w{name + ".npy", crc_of(bytes), bytes.size(), file.position()};
    file.write(local_header(w));
    file.write(bytes);
    written.push_back(std::move(w));
  }
  const std::uint64_t cd_offset = file.position();
  std::string cd;
  for (const Written& w : written) cd += central_header(w);
  file.write(cd);
  file.write(end_records(written.size(), cd_offset, cd.size()));
  file.commit(path);
}

}  // namespace ruche
