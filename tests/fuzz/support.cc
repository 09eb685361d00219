// TempFile and TempDir of fuzz_target.h.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "tests/fuzz/fuzz_target.h"

namespace ruche::fuzz {
namespace {

namespace fs = std::filesystem;

std::string temp_root() {
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  return fs::temp_directory_path().string();
}

void write_bytes(const std::string& path, const char* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
  if (!out) std::abort();  // the harness itself failed: not a finding of the parser
}

}  // namespace

TempFile::TempFile(const std::uint8_t* data, std::size_t size, const std::string& suffix) {
  std::string pattern = temp_root() + "/ruche-fuzz-XXXXXX";
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) std::abort();
  ::close(fd);
  std::error_code ec;
  fs::remove(pattern, ec);
  path_ = pattern + suffix;
  write_bytes(path_, reinterpret_cast<const char*>(data), size);
}

TempFile::~TempFile() {
  std::error_code ec;
  fs::remove(path_, ec);
}

TempDir::TempDir() {
  std::string pattern = temp_root() + "/ruche-fuzz-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void TempDir::write(const std::string& name, const std::string& bytes) const {
  write_bytes(path_ + "/" + name, bytes.data(), bytes.size());
}

}  // namespace ruche::fuzz
