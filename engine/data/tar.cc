#include "engine/data/tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <optional>

#include "engine/error.h"

namespace ruche {
namespace {

// ustar header fields: offset and width.
constexpr std::size_t kName = 0, kNameLen = 100;
constexpr std::size_t kMode = 100, kUid = 108, kGid = 116, kSize = 124, kMtime = 136;
constexpr std::size_t kChecksum = 148, kChecksumLen = 8;
constexpr std::size_t kType = 156, kMagic = 257, kVersion = 263;
constexpr std::size_t kPrefix = 345, kPrefixLen = 155;
constexpr std::uint64_t kMaxSize = 077777777777ull;  // 11 octal digits

std::uint64_t padded(std::uint64_t size) { return (size + kTarBlock - 1) / kTarBlock * kTarBlock; }

// value as `width - 1` zero-padded octal digits and a NUL.
void put_octal(std::uint8_t* field, std::size_t width, std::uint64_t value) {
  field[width - 1] = 0;
  for (std::size_t i = width - 1; i-- > 0; value >>= 3) field[i] = '0' + (value & 7);
}

// Sum of the header's bytes with the checksum field counted as spaces
// (unsigned, as POSIX).
std::uint32_t header_sum(const std::uint8_t* h) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < kTarBlock; ++i) {
    sum += i >= kChecksum && i < kChecksum + kChecksumLen ? ' ' : h[i];
  }
  return sum;
}

// Old tars summed signed chars; accepted on reading.
std::int32_t header_sum_signed(const std::uint8_t* h) {
  std::int32_t sum = 0;
  for (std::size_t i = 0; i < kTarBlock; ++i) {
    sum += i >= kChecksum && i < kChecksum + kChecksumLen ? ' ' : static_cast<std::int8_t>(h[i]);
  }
  return sum;
}

// An octal field (leading spaces, digits, then NUL or space); false when it
// holds anything else.
bool get_octal(const std::uint8_t* field, std::size_t width, std::uint64_t* value) {
  std::size_t i = 0;
  while (i < width && field[i] == ' ') ++i;
  std::uint64_t v = 0;
  bool digits = false;
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) {
    v = v * 8 + (field[i] - '0');
    digits = true;
  }
  for (; i < width; ++i) {
    if (field[i] != 0 && field[i] != ' ') return false;
  }
  *value = v;
  return digits;
}

std::string field_string(const std::uint8_t* field, std::size_t width) {
  const auto* begin = reinterpret_cast<const char*>(field);
  return std::string(begin, std::find(begin, begin + width, '\0'));
}

// A size field: octal digits, or GNU's base-256 (high bit of the first byte
// set, big-endian binary after it) for members of 8 GiB and more.
bool get_size(const std::uint8_t* field, std::uint64_t* value) {
  if (field[0] & 0x80) {
    std::uint64_t v = field[0] & 0x3f;
    if (field[0] & 0x40) return false;  // negative
    for (std::size_t i = 1; i < 12; ++i) {
      if (v >> 56) return false;
      v = (v << 8) | field[i];
    }
    *value = v;
    return true;
  }
  return get_octal(field, 12, value);
}

// What one 512-byte header says.
struct RawHeader {
  std::string name;
  char type = '0';
  std::uint64_t size = 0;
};

// Checks one header (checksum, size) and reads its name, type and data size;
// false for a zero block (the end of the archive).
bool read_tar_header(const std::uint8_t* h, const std::string& what, std::uint64_t offset,
                     RawHeader* out) {
  if (std::all_of(h, h + kTarBlock, [](std::uint8_t b) { return b == 0; })) return false;
  std::uint64_t stored = 0;
  RUCHE_REQUIRE(get_octal(h + kChecksum, kChecksumLen, &stored))
      << what << ": no tar header at byte " << offset << " (unreadable checksum field)";
  RUCHE_REQUIRE(stored == header_sum(h) ||
                static_cast<std::int64_t>(stored) == header_sum_signed(h))
      << what << ": corrupt tar header at byte " << offset << " (checksum " << stored
      << ", computed " << header_sum(h) << ")";
  out->name = field_string(h + kName, kNameLen);
  if (std::memcmp(h + kMagic, "ustar", 5) == 0 && h[kPrefix] != 0 &&
      std::memcmp(h + kMagic, "ustar  ", 8) != 0) {  // GNU's magic: no prefix field
    out->name = field_string(h + kPrefix, kPrefixLen) + "/" + out->name;
  }
  out->type = static_cast<char>(h[kType]);
  RUCHE_REQUIRE(get_size(h + kSize, &out->size))
      << what << ": member '" << out->name << "' at byte " << offset << " has an unreadable size";
  return true;
}

// The records of a PAX extended header ("LEN key=value\n" each) that ruche
// uses: path and size.
void read_pax(const std::vector<std::uint8_t>& data, const std::string& what, std::uint64_t offset,
              std::optional<std::string>* path, std::optional<std::uint64_t>* size) {
  const std::string text(data.begin(), data.end());
  std::size_t at = 0;
  while (at < text.size() && text[at] != '\0') {
    std::size_t length = 0;
    const auto [p, ec] = std::from_chars(text.data() + at, text.data() + text.size(), length);
    const std::size_t space = static_cast<std::size_t>(p - text.data());
    RUCHE_REQUIRE(ec == std::errc() && space < text.size() && text[space] == ' ' &&
                  length > space - at + 1 && at + length <= text.size() &&
                  text[at + length - 1] == '\n')
        << what << ": corrupt PAX extended header at byte " << offset << " (record at " << at
        << ")";
    const std::string record = text.substr(space + 1, at + length - 1 - (space + 1));
    const std::size_t eq = record.find('=');
    RUCHE_REQUIRE(eq != std::string::npos) << what << ": corrupt PAX extended header at byte "
                                           << offset << " (record at " << at << " has no '=')";
    const std::string key = record.substr(0, eq), value = record.substr(eq + 1);
    if (key == "path") {
      *path = value;
    } else if (key == "size") {
      std::uint64_t v = 0;
      const auto [q, e2] = std::from_chars(value.data(), value.data() + value.size(), v);
      RUCHE_REQUIRE(e2 == std::errc() && q == value.data() + value.size())
          << what << ": PAX extended header at byte " << offset << " has size '" << value << "'";
      *size = v;
    }
    at += length;
  }
}

// Reads up to n bytes at offset into dst; returns how many there were.
using ReadAt = std::function<std::size_t(std::uint64_t offset, std::size_t n, std::uint8_t* dst)>;

// One member from `start`: its extended headers (PAX 'x', GNU 'L' and 'K'),
// then its own header. `limit` is where the bytes end (the file's size, or the
// end of a buffer), for the truncation messages. Sets the member's name, type
// and offset (start), *data_at and *size (where its data starts and how long
// it is; 0 for members that are not regular files); false at an end block.
bool read_member_header(const ReadAt& read, std::uint64_t limit, const std::string& what,
                        std::uint64_t start, TarMember* out, std::uint64_t* data_at,
                        std::uint64_t* size) {
  std::optional<std::string> long_name;
  std::optional<std::uint64_t> long_size;
  std::uint64_t at = start;
  for (;;) {
    std::uint8_t h[kTarBlock];
    const std::size_t got = read(at, kTarBlock, h);
    RUCHE_REQUIRE(got == kTarBlock) << what << ": truncated at byte " << at + got
                                    << " (a tar header at byte " << at << " needs 512 bytes)";
    RawHeader raw;
    if (!read_tar_header(h, what, at, &raw)) {
      RUCHE_REQUIRE(at == start) << what << ": the extended header at byte " << start
                                 << " is followed by the end of the archive, not its member";
      return false;
    }
    const char t = raw.type;
    if (t == 'x' || t == 'L' || t == 'K') {
      RUCHE_REQUIRE(raw.size <= (64u << 20))
          << what << ": extended header at byte " << at << " announces " << raw.size << " bytes";
      const std::uint64_t need = tar_member_bytes(raw.size);
      RUCHE_REQUIRE(at + need <= limit)
          << what << ": truncated at byte " << limit << " (extended header at byte " << at
          << " needs " << need << " bytes)";
      std::vector<std::uint8_t> data(raw.size);
      RUCHE_REQUIRE(read(at + kTarBlock, data.size(), data.data()) == data.size())
          << what << ": read failed at byte " << at + kTarBlock;
      if (t == 'x') {
        read_pax(data, what, at, &long_name, &long_size);
      } else if (t == 'L') {
        long_name = std::string(data.begin(), std::find(data.begin(), data.end(), 0));
      }
      at += need;
      continue;
    }
    out->name = long_name ? *long_name : raw.name;
    out->type = t;
    out->offset = start;
    const std::uint64_t data_size = long_size ? *long_size : raw.size;
    // Links and directories may announce a size; their data, if any, is skipped with them.
    const std::uint64_t need = at - start + tar_member_bytes(data_size);
    RUCHE_REQUIRE(start + need <= limit)
        << what << ": truncated at byte " << limit << " (member '" << out->name << "' at byte "
        << start << " needs " << need << " bytes)";
    *data_at = at + kTarBlock;
    *size = data_size;
    return true;
  }
}

}  // namespace

std::uint64_t tar_member_bytes(std::uint64_t size) { return kTarBlock + padded(size); }

void tar_header(std::string_view name, std::uint64_t size, const std::string& what,
                std::uint8_t header[kTarBlock]) {
  RUCHE_REQUIRE(!name.empty() && name.size() <= kNameLen)
      << what << ": member name '" << name << "' has " << name.size()
      << " bytes; a tar name holds 1 to 100";
  RUCHE_REQUIRE(size <= kMaxSize) << what << ": member '" << name << "' has " << size
                                  << " bytes; a ustar member holds under 8 GiB";
  std::memset(header, 0, kTarBlock);
  // The block is zeroed, and a ustar name may fill its 100 bytes with no NUL.
  // NOLINTNEXTLINE(bugprone-not-null-terminated-result)
  std::memcpy(header + kName, name.data(), name.size());
  put_octal(header + kMode, 8, 0644);
  put_octal(header + kUid, 8, 0);
  put_octal(header + kGid, 8, 0);
  put_octal(header + kSize, 12, size);
  put_octal(header + kMtime, 12, 0);
  header[kType] = '0';
  std::memcpy(header + kMagic, "ustar", 6);  // with its NUL
  // ustar's version is two digits, no NUL.
  // NOLINTNEXTLINE(bugprone-not-null-terminated-result)
  std::memcpy(header + kVersion, "00", 2);
  // Six octal digits, NUL, space: what POSIX tar writes.
  const std::uint32_t sum = header_sum(header);
  put_octal(header + kChecksum, 7, sum);
  header[kChecksum + 7] = ' ';
}

bool parse_tar_member(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                      std::uint64_t offset, TarMember* out, std::uint64_t* consumed) {
  const ReadAt read = [&](std::uint64_t at, std::size_t n, std::uint8_t* dst) {
    const std::uint64_t from = at - offset;
    const std::size_t got =
        from >= size ? 0 : static_cast<std::size_t>(std::min<std::uint64_t>(n, size - from));
    if (got) std::memcpy(dst, bytes + from, got);  // dst may be null for 0 bytes (tests/fuzz)
    return got;
  };
  std::uint64_t data_at = 0, data_size = 0;
  if (!read_member_header(read, offset + size, what, offset, out, &data_at, &data_size)) {
    return false;
  }
  if (out->regular()) {
    out->data.assign(bytes + (data_at - offset), bytes + (data_at - offset) + data_size);
  } else {
    out->data.clear();
  }
  *consumed = data_at - offset + padded(data_size);
  return true;
}

// ---- writer ----

TarWriter::TarWriter(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "wb");
  RUCHE_REQUIRE(file_) << path << ": cannot create (" << std::strerror(errno) << ")";
}

TarWriter::~TarWriter() {
  if (file_) std::fclose(file_);
}

void TarWriter::write(const void* data, std::size_t size) {
  RUCHE_REQUIRE(file_) << path_ << ": written after finish()";
  RUCHE_REQUIRE(std::fwrite(data, 1, size, file_) == size)
      << path_ << ": write failed at byte " << offset_ << " (" << std::strerror(errno) << ")";
  offset_ += size;
}

std::uint64_t TarWriter::add(std::string_view name, const void* data, std::size_t size) {
  std::uint8_t header[kTarBlock];
  tar_header(name, size, path_, header);
  const std::uint64_t at = offset_;
  write(header, kTarBlock);
  if (size > 0) write(data, size);
  static const std::uint8_t zeros[kTarBlock] = {};
  write(zeros, padded(size) - size);
  return at;
}

void TarWriter::finish() {
  static const std::uint8_t zeros[2 * kTarBlock] = {};
  write(zeros, sizeof zeros);
  const bool flushed = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  const int err = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  RUCHE_REQUIRE(flushed && closed) << path_ << ": cannot flush (" << std::strerror(err) << ")";
}

// ---- reader ----

TarReader::TarReader(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  RUCHE_REQUIRE(fd_ >= 0) << path << ": cannot open (" << std::strerror(errno) << ")";
  struct stat st {};
  RUCHE_REQUIRE(::fstat(fd_, &st) == 0) << path << ": cannot stat";
  file_size_ = static_cast<std::uint64_t>(st.st_size);
}

TarReader::~TarReader() {
  if (fd_ >= 0) ::close(fd_);
}

void TarReader::seek(std::uint64_t offset) {
  RUCHE_REQUIRE(offset % kTarBlock == 0 && offset <= file_size_)
      << path_ << ": no member can start at byte " << offset << " (file of " << file_size_
      << " bytes)";
  offset_ = offset;
}

namespace {

std::size_t pread_all(int fd, std::uint64_t offset, std::size_t n, std::uint8_t* dst,
                      const std::string& path) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, dst + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    RUCHE_REQUIRE(r >= 0) << path << ": read failed at byte " << offset + got << " ("
                          << std::strerror(errno) << ")";
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

}  // namespace

bool TarReader::read_header(TarMember* out, std::uint64_t* size) {
  RUCHE_REQUIRE(offset_ < file_size_)
      << path_ << ": truncated at byte " << offset_ << " (no end-of-archive blocks)";
  const ReadAt read = [&](std::uint64_t at, std::size_t n, std::uint8_t* dst) {
    return pread_all(fd_, at, n, dst, path_);
  };
  if (!read_member_header(read, file_size_, path_, offset_, out, &last_data_, size)) return false;
  offset_ = last_data_ + padded(*size);
  if (!out->regular()) *size = 0;
  return true;
}

bool TarReader::next_header(TarMember* out, std::uint64_t* size) {
  if (!read_header(out, size)) return false;
  out->data.clear();
  return true;
}

std::vector<std::uint8_t> TarReader::data_of_last(std::uint64_t size) const {
  std::vector<std::uint8_t> data(size);
  RUCHE_REQUIRE(pread_all(fd_, last_data_, data.size(), data.data(), path_) == data.size())
      << path_ << ": truncated at byte " << last_data_;
  return data;
}

bool TarReader::next(TarMember* out) {
  std::uint64_t size = 0;
  if (!read_header(out, &size)) return false;
  out->data = data_of_last(size);
  return true;
}

}  // namespace ruche
