// Durable writes and plain reads for checkpoint files (see file_io.h).
#include "engine/checkpoint/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "engine/error.h"

namespace ruche::checkpoint_io {
namespace {

namespace fs = std::filesystem;

// Closes a file descriptor on every path out, unless released.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

[[noreturn]] void fail(const std::string& name, const std::string& what, int err,
                       std::size_t size) {
  if (err == ENOSPC || err == EDQUOT) {
    std::string message = name;
    message.append(": ").append(error_text(err)).append(" (");
    message.append(std::to_string(size)).append(" bytes)");
    throw NoSpaceError(message);
  }
  std::string message = name;
  message.append(": ").append(what).append(": ").append(error_text(err));
  throw Error(message);
}

}  // namespace

std::string error_text(int err) {
  std::string text = std::strerror(err);
  if (!text.empty() && std::isupper(static_cast<unsigned char>(text[0])) &&
      (text.size() < 2 || !std::isupper(static_cast<unsigned char>(text[1])))) {
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  }
  return text;
}

void write_all(int fd, const void* data, std::size_t size, const std::string& name) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(name, "write failed", errno, size);
    }
    if (n == 0) fail(name, "write failed", EIO, size);
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void fsync_directory(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) fail(dir, "cannot open the directory to fsync it", errno, 0);
  // Some file systems refuse fsync on directories (EINVAL); the rename is as durable as they allow.
  if (::fsync(fd.get()) != 0 && errno != EINVAL && errno != EROFS) {
    fail(dir, "fsync of the directory failed", errno, 0);
  }
}

void make_directories(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    std::string message = dir;
    message.append(": cannot create the directory: ").append(error_text(ec.value()));
    if (ec.value() == ENOSPC || ec.value() == EDQUOT) throw NoSpaceError(message);
    throw Error(message);
  }
}

void write_file_durably(const std::string& path, const void* data, std::size_t size) {
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) fail(tmp, "cannot create", errno, size);
  try {
    write_all(fd.get(), data, size, tmp);
    if (::fsync(fd.get()) != 0) fail(tmp, "fsync failed", errno, size);
    if (::close(fd.release()) != 0) fail(tmp, "close failed", errno, size);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      std::string what = "cannot rename to ";
      what.append(path);
      fail(tmp, what, errno, size);
    }
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  const fs::path parent = fs::path(path).parent_path();
  fsync_directory(parent.empty() ? "." : parent.string());
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    std::string message = path;
    message.append(": missing");
    throw Error(message);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::string message = path;
    message.append(": cannot read: ").append(error_text(errno));
    throw Error(message);
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) {
    std::string message = path;
    message.append(": read failed");
    throw Error(message);
  }
  return out.str();
}

}  // namespace ruche::checkpoint_io
