// Writing one rank's shard: durably (write_shard) or on a background thread (ShardWriter).
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <mutex>
#include <optional>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/file_io.h"
#include "engine/error.h"

namespace ruche {

ShardRecord write_shard(const std::string& dir, int rank, int world, ByteRange range,
                        const std::vector<std::uint8_t>& bytes) {
  RUCHE_CHECK(static_cast<std::int64_t>(bytes.size()) == range.size())
      << "shard " << rank << " of " << world << ": " << bytes.size() << " bytes for a range of "
      << range.size();
  checkpoint_io::make_directories(dir);
  ShardRecord record;
  record.file = shard_file_name(rank, world);
  record.range = range;
  record.crc32c = crc32c(bytes.data(), bytes.size());
  checkpoint_io::write_file_durably((std::filesystem::path(dir) / record.file).string(),
                                    bytes.data(), bytes.size());
  return record;
}

struct ShardWriter::State {
  std::mutex mutex;
  bool finished = false;
  std::optional<ShardRecord> record;
  std::exception_ptr error;
  std::vector<std::uint8_t> bytes;  // handed back after the write, for the next snapshot
  double seconds = 0;               // the write's wall time
};

ShardWriter::~ShardWriter() {
  if (thread_.joinable()) thread_.join();
}

void ShardWriter::start(std::string dir, int rank, int world, ByteRange range,
                        std::vector<std::uint8_t> bytes, std::function<void()> before_write) {
  if (thread_.joinable()) thread_.join();  // a write in flight finishes first (its result is lost)
  auto state = std::make_shared<State>();
  state_ = state;
  thread_ = std::thread([state, dir = std::move(dir), rank, world, range, bytes = std::move(bytes),
                         before_write = std::move(before_write)]() mutable {
    // Below the training threads: on a busy machine the write yields to the step.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
    std::optional<ShardRecord> record;
    std::exception_ptr error;
    const auto started = std::chrono::steady_clock::now();
    try {
      if (before_write) before_write();
      record = write_shard(dir, rank, world, range, bytes);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(state->mutex);
    state->record = std::move(record);
    state->error = error;
    state->bytes = std::move(bytes);
    state->seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    state->finished = true;
  });
}

bool ShardWriter::busy() const { return state_ != nullptr; }

bool ShardWriter::done() const {
  if (!state_) return false;
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->finished;
}

ShardRecord ShardWriter::collect() {
  RUCHE_CHECK(state_ != nullptr) << "ShardWriter::collect with no write started";
  if (thread_.joinable()) thread_.join();
  const std::shared_ptr<State> state = std::move(state_);
  state_.reset();
  spare_ = std::move(state->bytes);
  last_seconds_ = state->seconds;
  if (state->error) std::rethrow_exception(state->error);
  RUCHE_CHECK(state->record.has_value()) << "ShardWriter: the write left no record";
  return *state->record;
}

}  // namespace ruche
