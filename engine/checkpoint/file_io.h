// Durable file writes for checkpoints: *.tmp, a write(2) loop, fsync, close, rename, fsync of the
// directory. Every failure is a one-line ruche::Error naming the file and what the system said.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ruche::checkpoint_io {

// Writes all `size` bytes to `fd` (short writes and EINTR retried). On failure throws ruche::Error
// "NAME: no space left on device (N bytes)" for ENOSPC (and EDQUOT), "NAME: write failed: ..."
// otherwise; the caller removes the file.
void write_all(int fd, const void* data, std::size_t size, const std::string& name);

// Writes `path` durably: path + ".tmp" created, written, fsynced, closed, renamed over `path`,
// and the directory fsynced. On failure the .tmp is removed and a ruche::Error names it.
void write_file_durably(const std::string& path, const void* data, std::size_t size);
inline void write_file_durably(const std::string& path, const std::string& text) {
  write_file_durably(path, text.data(), text.size());
}

// fsyncs a directory, so a rename inside it survives a crash.
void fsync_directory(const std::string& dir);

// Creates `dir` and its parents; a ruche::Error naming it when it cannot be.
void make_directories(const std::string& dir);

// The whole file; a ruche::Error "PATH: missing" or "PATH: cannot read: ..." otherwise.
std::string read_file(const std::string& path);

// strerror(err) as a lowercase phrase ("no space left on device").
std::string error_text(int err);

}  // namespace ruche::checkpoint_io
