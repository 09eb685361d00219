#include "engine/data/tar.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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

// Checks one header (checksum, type, size) and reads its name and data size;
// false for a zero block (the end of the archive).
bool read_tar_header(const std::uint8_t* h, const std::string& what, std::uint64_t offset,
                     std::string* name, std::uint64_t* data_size) {
  if (std::all_of(h, h + kTarBlock, [](std::uint8_t b) { return b == 0; })) return false;
  std::uint64_t stored = 0;
  RUCHE_REQUIRE(get_octal(h + kChecksum, kChecksumLen, &stored))
      << what << ": no tar header at byte " << offset << " (unreadable checksum field)";
  RUCHE_REQUIRE(stored == header_sum(h) ||
                static_cast<std::int64_t>(stored) == header_sum_signed(h))
      << what << ": corrupt tar header at byte " << offset << " (checksum " << stored
      << ", computed " << header_sum(h) << ")";
  *name = field_string(h + kName, kNameLen);
  if (std::memcmp(h + kMagic, "ustar", 5) == 0 && h[kPrefix] != 0) {
    *name = field_string(h + kPrefix, kPrefixLen) + "/" + *name;
  }
  const char type = static_cast<char>(h[kType]);
  RUCHE_REQUIRE(type == '0' || type == '\0')
      << what << ": member '" << *name << "' at byte " << offset << " has tar type '" << type
      << "'; ruche reads regular files only";
  RUCHE_REQUIRE(get_octal(h + kSize, 12, data_size))
      << what << ": member '" << *name << "' at byte " << offset << " has an unreadable size";
  return true;
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
  std::memcpy(header + kName, name.data(), name.size());
  put_octal(header + kMode, 8, 0644);
  put_octal(header + kUid, 8, 0);
  put_octal(header + kGid, 8, 0);
  put_octal(header + kSize, 12, size);
  put_octal(header + kMtime, 12, 0);
  header[kType] = '0';
  std::memcpy(header + kMagic, "ustar", 6);  // with its NUL
  std::memcpy(header + kVersion, "00", 2);
  // Six octal digits, NUL, space: what POSIX tar writes.
  const std::uint32_t sum = header_sum(header);
  put_octal(header + kChecksum, 7, sum);
  header[kChecksum + 7] = ' ';
}

bool parse_tar_member(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                      std::uint64_t offset, TarMember* out, std::uint64_t* consumed) {
  RUCHE_REQUIRE(size >= kTarBlock) << what << ": truncated at byte " << offset + size
                                   << " (a tar header at byte " << offset << " needs 512 bytes)";
  std::uint64_t data_size = 0;
  if (!read_tar_header(bytes, what, offset, &out->name, &data_size)) return false;
  const std::uint64_t need = tar_member_bytes(data_size);
  RUCHE_REQUIRE(need <= size) << what << ": truncated at byte " << offset + size << " (member '"
                              << out->name << "' at byte " << offset << " needs " << need
                              << " bytes)";
  out->data.assign(bytes + kTarBlock, bytes + kTarBlock + data_size);
  out->offset = offset;
  *consumed = need;
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
  file_ = std::fopen(path.c_str(), "rb");
  RUCHE_REQUIRE(file_) << path << ": cannot open (" << std::strerror(errno) << ")";
  struct stat st {};
  RUCHE_REQUIRE(::fstat(fileno(file_), &st) == 0) << path << ": cannot stat";
  file_size_ = static_cast<std::uint64_t>(st.st_size);
}

TarReader::~TarReader() {
  if (file_) std::fclose(file_);
}

void TarReader::seek(std::uint64_t offset) {
  RUCHE_REQUIRE(offset % kTarBlock == 0 && offset <= file_size_)
      << path_ << ": no member can start at byte " << offset << " (file of " << file_size_
      << " bytes)";
  RUCHE_REQUIRE(::fseeko(file_, static_cast<off_t>(offset), SEEK_SET) == 0)
      << path_ << ": cannot seek to byte " << offset;
  offset_ = offset;
}

bool TarReader::read_header(TarMember* out, std::uint64_t* size) {
  RUCHE_REQUIRE(offset_ < file_size_)
      << path_ << ": truncated at byte " << offset_ << " (no end-of-archive blocks)";
  std::uint8_t header[kTarBlock];
  const std::size_t got = std::fread(header, 1, kTarBlock, file_);
  RUCHE_REQUIRE(got == kTarBlock) << path_ << ": truncated at byte " << offset_ + got
                                  << " (a tar header at byte " << offset_ << " needs 512 bytes)";
  if (!read_tar_header(header, path_, offset_, &out->name, size)) return false;
  const std::uint64_t need = tar_member_bytes(*size);
  RUCHE_REQUIRE(offset_ + need <= file_size_)
      << path_ << ": truncated at byte " << file_size_ << " (member '" << out->name << "' at byte "
      << offset_ << " needs " << need << " bytes)";
  out->offset = offset_;
  offset_ += kTarBlock;
  return true;
}

bool TarReader::next_header(TarMember* out, std::uint64_t* size) {
  if (!read_header(out, size)) return false;
  seek(offset_ + padded(*size));
  out->data.clear();
  return true;
}

bool TarReader::next(TarMember* out) {
  std::uint64_t size = 0;
  if (!read_header(out, &size)) return false;
  out->data.resize(size);
  RUCHE_REQUIRE(std::fread(out->data.data(), 1, size, file_) == size)
      << path_ << ": read failed at byte " << offset_;
  seek(offset_ + padded(size));
  return true;
}

}  // namespace ruche
