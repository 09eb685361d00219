// A minimal tar writer and a reader for the archives WebDataset users have.
//
// The writer: POSIX ustar, regular files only, names up to 100 bytes, sizes
// below 8 GiB (11 octal digits), data padded to 512 bytes, two zero blocks at
// the end. Enough for WebDataset shards (`key.jpg`, `key.cls`), which GNU tar,
// Python's tarfile and webdataset read. Headers carry mode 0644, uid/gid 0 and
// mtime 0, so an archive's bytes depend on its members only.
//
// The reader: ustar and v7 headers (a ustar prefix joined to the name), PAX
// extended headers ('x': path and size override the member's own header; what
// Python's tarfile writes by default), GNU long names ('L'; 'K' long link
// names are read and dropped), GNU base-256 sizes. A member is returned with
// its type: regular files ('0', '\0', '7') carry their data; directories,
// links, PAX global headers ('g') and other types come back as non-regular
// members (no data) for the caller to skip. A member's offset is that of its
// first header, extended headers included, so a byte range from one member's
// offset to the next covers it whole.
//
// A corrupt or truncated archive is a ruche::Error naming the file and the byte
// offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace ruche {

inline constexpr std::size_t kTarBlock = 512;

// One member as read back: its name (a PAX or GNU long name when it has one),
// its data (regular files), where its first header starts in the archive, and
// its tar type.
struct TarMember {
  std::string name;
  std::vector<std::uint8_t> data;
  std::uint64_t offset = 0;
  char type = '0';  // '0' a regular file; '5' a directory, '2' a symlink, 'g' PAX global, ...
  bool regular() const { return type == '0' || type == '\0' || type == '7'; }
};

// The 512-byte ustar header of a regular file `name` of `size` bytes; `what`
// names the archive in errors (a name longer than 100 bytes, a size of 8 GiB or
// more).
void tar_header(std::string_view name, std::uint64_t size, const std::string& what,
                std::uint8_t header[kTarBlock]);
// Bytes a member of `size` bytes takes in an archive: header plus data padded
// to 512.
std::uint64_t tar_member_bytes(std::uint64_t size);

class TarWriter {
 public:
  // Creates (or truncates) `path`.
  explicit TarWriter(const std::string& path);
  ~TarWriter();  // closes without the end blocks when finish() was not called
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  // Appends regular file `name` holding `size` bytes; returns the offset of its
  // header.
  std::uint64_t add(std::string_view name, const void* data, std::size_t size);
  // Writes the two end blocks, flushes and fsyncs, closes. Required for a
  // complete archive.
  void finish();
  std::uint64_t bytes() const { return offset_; }  // written so far

 private:
  void write(const void* data, std::size_t size);
  std::string path_;
  std::FILE* file_ = nullptr;
  std::uint64_t offset_ = 0;
};

// Parses the member at the start of bytes [0, size) that was read from `what`
// at archive offset `offset` (errors name both). Returns false for an
// end-of-archive (zero) block. Sets *consumed to the member's bytes (header +
// padded data).
bool parse_tar_member(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                      std::uint64_t offset, TarMember* out, std::uint64_t* consumed);

class TarReader {
 public:
  explicit TarReader(const std::string& path);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // Reads the next member into *out; false at the end-of-archive blocks. An
  // archive that ends without them, or mid-member, is an error (truncated).
  bool next(TarMember* out);
  // Like next() but skips the data (seeks past it): names and offsets only;
  // *size is the data's size (0 for members that are not regular files).
  bool next_header(TarMember* out, std::uint64_t* size);
  // The data of the member next_header() returned last, `size` bytes from its
  // data's start: reads without moving the reader.
  std::vector<std::uint8_t> data_of_last(std::uint64_t size) const;
  // Moves to the header at `offset` (a member boundary, e.g. from an index).
  void seek(std::uint64_t offset);
  std::uint64_t offset() const { return offset_; }
  std::uint64_t file_size() const { return file_size_; }

 private:
  bool read_header(TarMember* out, std::uint64_t* size);
  std::string path_;
  int fd_ = -1;
  std::uint64_t offset_ = 0, file_size_ = 0;
  std::uint64_t last_data_ = 0;  // where the last member's data starts
};

}  // namespace ruche
