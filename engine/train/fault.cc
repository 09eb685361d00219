#include "engine/train/fault.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/error.h"

namespace ruche {

Fault Fault::from_env() {
  const char* text = std::getenv("RUCHE_FAULT");
  Fault f = text && *text ? parse(text) : Fault{};
  if (const char* mark = std::getenv("RUCHE_FAULT_MARK")) f.mark = mark;
  return f;
}

Fault Fault::parse(const std::string& text) {
  Fault f;
  const std::size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  if (kind == "throw_at_step") f.kind = Kind::throw_at_step;
  if (kind == "crash_at_step") f.kind = Kind::crash_at_step;
  if (kind == "hang_at_step") f.kind = Kind::hang_at_step;
  if (kind == "crash_after_shard_write") f.kind = Kind::crash_after_shard_write;
  if (kind == "crash_in_writer") f.kind = Kind::crash_in_writer;
  RUCHE_REQUIRE(f.kind != Kind::none && colon != std::string::npos)
      << "RUCHE_FAULT=" << text
      << ": expected throw_at_step:N, crash_at_step:N, hang_at_step:N or "
         "crash_after_shard_write:N or crash_in_writer:N (N+: from step N on), optionally @RANK";
  const std::string rest = text.substr(colon + 1);
  const std::size_t at = rest.find('@');
  std::string step = rest.substr(0, at);
  if (!step.empty() && step.back() == '+') {
    f.or_later = true;
    step.pop_back();
  }
  char* end = nullptr;
  f.step = std::strtoll(step.c_str(), &end, 10);
  RUCHE_REQUIRE(*end == '\0' && f.step >= 0 && !step.empty())
      << "RUCHE_FAULT=" << text << ": the step must be a number >= 0 (N+: from step N on)";
  if (at != std::string::npos) {
    const std::string rank = rest.substr(at + 1);  // named: end points into it below
    f.rank = static_cast<int>(std::strtol(rank.c_str(), &end, 10));
    RUCHE_REQUIRE(*end == '\0' && f.rank >= 0 && !rank.empty())
        << "RUCHE_FAULT=" << text << ": the rank after @ must be a number >= 0";
  }
  return f;
}

void Fault::maybe_fail(Point point, std::int64_t at_step, int at_rank) const {
  const Point mine = kind == Kind::crash_after_shard_write ? Point::after_shard_write
                     : kind == Kind::crash_in_writer       ? Point::in_writer
                                                           : Point::step_start;
  const bool at_its_step = or_later ? at_step >= step : at_step == step;
  if (kind == Kind::none || point != mine || !at_its_step || (rank >= 0 && rank != at_rank)) {
    return;
  }
  if (!mark.empty()) {
    if (std::filesystem::exists(mark)) return;  // fired once already
    std::ofstream(mark) << at_step << "\n";
  }
  std::fprintf(stderr, "ruche: rank %d: RUCHE_FAULT injected at step %lld\n", at_rank,
               static_cast<long long>(at_step));
  std::fflush(stderr);
  switch (kind) {
    case Kind::throw_at_step:
      // A crash of ruche's own (restarted), not a user error (exit 2, never restarted).
      throw InternalError("RUCHE_FAULT: injected error at step " + std::to_string(at_step));
    case Kind::crash_at_step:
    case Kind::crash_after_shard_write:
    case Kind::crash_in_writer:
      std::raise(SIGKILL);
      break;
    case Kind::hang_at_step:
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    case Kind::none:
      break;
  }
}

}  // namespace ruche
