// One fuzz target: RUCHE_FUZZ_TARGET(name) { ... } is a body over `data` and `size` that feeds the
// bytes to one parser of outside bytes. A ruche::Error (a user error naming the file) is a fine
// outcome and is caught here; anything else (an InternalError, another exception, a crash, a
// hang, unbounded memory) is a finding.
//
// Built two ways from the same source:
//   - with RUCHE_LIBFUZZER (build-fuzz/, clang -fsanitize=fuzzer,address,undefined by
//     `make fuzz`): the body becomes LLVMFuzzerTestOneInput, one executable per target;
//   - otherwise (the normal g++ build): the body registers itself by name, and fuzz_replay
//     (tests/fuzz/replay.cc) runs every file of tests/fuzz/corpus/<name>/ and
//     tests/fuzz/crashes/<name>/ through it under ctest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/error.h"

namespace ruche::fuzz {

using TargetFn = void (*)(const std::uint8_t* data, std::size_t size);

// Registers a target for the replay driver (no-op under libFuzzer).
bool register_target(const char* name, TargetFn fn);

// A private temporary file or directory holding the bytes, for parsers that take a path; removed
// by the destructor. Under /dev/shm when it exists.
class TempFile {
 public:
  TempFile(const std::uint8_t* data, std::size_t size, const std::string& suffix = "");
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes `bytes` to path()/name.
  void write(const std::string& name, const std::string& bytes) const;

 private:
  std::string path_;
};

}  // namespace ruche::fuzz

#ifdef RUCHE_LIBFUZZER
#define RUCHE_FUZZ_TARGET(name)                                                       \
  static void ruche_fuzz_body(const std::uint8_t* data, std::size_t size);            \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    try {                                                                             \
      ruche_fuzz_body(data, size);                                                    \
    } catch (const ::ruche::Error&) {                                                 \
    }                                                                                 \
    return 0;                                                                         \
  }                                                                                   \
  static void ruche_fuzz_body(const std::uint8_t* data, std::size_t size)
#else
#define RUCHE_FUZZ_TARGET(name)                                              \
  static void ruche_fuzz_##name(const std::uint8_t* data, std::size_t size); \
  [[maybe_unused]] static const bool ruche_fuzz_registered_##name =          \
      ::ruche::fuzz::register_target(#name, ruche_fuzz_##name);              \
  static void ruche_fuzz_##name(const std::uint8_t* data, std::size_t size)
#endif
