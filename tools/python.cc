#include "tools/python.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "engine/error.h"

// POSIX declares environ in no header (glibc's unistd.h does, but only with _GNU_SOURCE).
extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace ruche::tools {
namespace {

namespace fs = std::filesystem;

// Runs argv[0] (searched on PATH) and waits; -1 when it cannot start.
int spawn_and_wait(const std::vector<std::string>& argv, bool quiet) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {  // a probe: its traceback would only confuse
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  std::fflush(stdout);  // our lines before the child's
  pid_t pid = 0;
  const int started = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (started != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool imports_matplotlib(const std::string& python) {
  return spawn_and_wait({python, "-c", "import matplotlib"}, true) == 0;
}

}  // namespace

std::string find_plotting_python() {
  if (const char* env = std::getenv("RUCHE_PYTHON"); env != nullptr && *env != '\0') {
    RUCHE_REQUIRE(imports_matplotlib(env))
        << "RUCHE_PYTHON=" << env << " cannot import matplotlib (on Debian: apt install "
        << "python3-matplotlib, then RUCHE_PYTHON=/usr/bin/python3)";
    return env;
  }
  // python3 on PATH first; then Debian's own, where python3-matplotlib installs (a pyenv or conda
  // python3 ahead on PATH often lacks it).
  for (const char* python : {"python3", "/usr/bin/python3"}) {
    if (imports_matplotlib(python)) return python;
  }
  RUCHE_FAIL() << "plots need Python with matplotlib: neither python3 on PATH nor /usr/bin/python3 "
               << "can import it; install python3-matplotlib or set RUCHE_PYTHON to a python "
               << "that has it";
}

std::string shipped_script(const std::string& name) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share/ruche/scripts" / name);
#ifdef RUCHE_SCRIPTS_DIR
  candidates.push_back(fs::path(RUCHE_SCRIPTS_DIR) / name);
#endif
  std::string tried;
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c)) return c.string();
    tried += (tried.empty() ? "" : ", ") + c.string();
  }
  throw Error("cannot find ruche's script " + name + " (looked in " + tried + ")");
}

int run_python(const std::string& python, const std::string& script,
               const std::vector<std::string>& args) {
  std::vector<std::string> argv{python, script};
  argv.insert(argv.end(), args.begin(), args.end());
  const int code = spawn_and_wait(argv, false);
  RUCHE_REQUIRE(code >= 0) << "cannot start " << python;
  return code;
}

}  // namespace ruche::tools
