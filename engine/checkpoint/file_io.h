// Durable file writes for checkpoints: *.tmp, a write(2) loop, fsync, close, rename, fsync of the
// directory. Every failure is a one-line ruche::Error naming the file and what the system said.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"

namespace ruche::checkpoint_io {

// A write that failed for lack of space (ENOSPC, EDQUOT): a ruche::Error the trainer tells apart,
// since a periodic checkpoint that meets a full disk is skipped (training goes on) and only the
// final one is fatal (exit 74, docs/ARCHITECTURE.md, Signals and exit codes).
class NoSpaceError : public Error {
 public:
  explicit NoSpaceError(const std::string& what) : Error(what) {}
};

// Writes all `size` bytes to `fd` (short writes and EINTR retried). On failure throws ruche::Error
// NoSpaceError "NAME: no space left on device (N bytes)" for ENOSPC (and EDQUOT), "NAME: write
// failed: ..." otherwise; the caller removes the file.
void write_all(int fd, const void* data, std::size_t size, const std::string& name);

// Writes `path` durably: path + ".tmp" created, written, fsynced, closed, renamed over `path`,
// and the directory fsynced. On failure the .tmp is removed and a ruche::Error names it.
void write_file_durably(const std::string& path, const void* data, std::size_t size);
inline void write_file_durably(const std::string& path, const std::string& text) {
  write_file_durably(path, text.data(), text.size());
}

// fsyncs a directory, so a rename inside it survives a crash.
void fsync_directory(const std::string& dir);

// Creates `dir` and its parents; a ruche::Error naming it when it cannot be (NoSpaceError when the
// disk is full).
void make_directories(const std::string& dir);

// The whole file; a ruche::Error "PATH: missing" or "PATH: cannot read: ..." otherwise.
std::string read_file(const std::string& path);

// strerror(err) as a lowercase phrase ("no space left on device").
std::string error_text(int err);

}  // namespace ruche::checkpoint_io
