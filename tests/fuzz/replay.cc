// fuzz_replay TARGET DIR...: every file of the DIRs (a missing DIR is empty) through fuzz target
// TARGET, as libFuzzer would feed it, built with our usual compiler. Success or a ruche::Error is
// a pass; any other exception fails the run naming the file (a crash or hang fails it as well).
// `fuzz_replay --list` prints the targets.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_target.h"

namespace ruche::fuzz {

std::map<std::string, TargetFn>& targets() {
  static std::map<std::string, TargetFn> all;
  return all;
}

bool register_target(const char* name, TargetFn fn) {
  targets()[name] = fn;
  return true;
}

}  // namespace ruche::fuzz

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using ruche::fuzz::targets;
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& [name, fn] : targets()) std::printf("%s\n", name.c_str());
    return 0;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: fuzz_replay TARGET DIR... | --list\n");
    return 2;
  }
  const auto it = targets().find(argv[1]);
  if (it == targets().end()) {
    std::fprintf(stderr, "fuzz_replay: no target '%s'\n", argv[1]);
    return 2;
  }
  std::vector<fs::path> files;
  for (int i = 2; i < argc; ++i) {
    std::error_code ec;
    if (!fs::is_directory(argv[i], ec)) continue;
    for (const auto& entry : fs::directory_iterator(argv[i])) {
      if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') {
        files.push_back(entry.path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  int passed = 0, user_errors = 0, failed = 0;
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      it->second(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      ++passed;
    } catch (const ruche::Error&) {
      ++user_errors;
    } catch (const std::exception& e) {
      ++failed;
      std::fprintf(stderr, "FAIL %s: %s\n", file.c_str(), e.what());
    } catch (...) {
      ++failed;
      std::fprintf(stderr, "FAIL %s: an exception that is not a std::exception\n", file.c_str());
    }
  }
  std::printf("fuzz_replay %s: %zu files: %d parsed, %d user errors, %d failures\n", argv[1],
              files.size(), passed, user_errors, failed);
  if (files.empty()) {
    std::fprintf(stderr, "fuzz_replay %s: no corpus files\n", argv[1]);
    return 1;
  }
  return failed ? 1 : 0;
}
