#include "engine/log/tensorboard_reader.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>

#include "engine/error.h"
#include "engine/log/tensorboard.h"

namespace ruche {

std::vector<tensorboard::Event> read_tensorboard_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RUCHE_REQUIRE(in) << path << ": cannot open";
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_tensorboard_events(bytes, path);
}

std::vector<tensorboard::Event> parse_tensorboard_events(const std::string& bytes,
                                                         const std::string& path) {
  std::vector<tensorboard::Event> events;
  std::size_t at = 0;
  while (at < bytes.size()) {
    RUCHE_REQUIRE(bytes.size() - at >= 12) << path << ": truncated record header at byte " << at;
    std::uint64_t length;
    std::uint32_t length_crc;
    std::memcpy(&length, bytes.data() + at, 8);
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    RUCHE_REQUIRE(masked_crc32c(bytes.data() + at, 8) == length_crc)
        << path << ": bad length crc in the record at byte " << at;
    RUCHE_REQUIRE(bytes.size() - at - 12 >= 4 && length <= bytes.size() - at - 16)
        << path << ": truncated record at byte " << at << " (" << length << " bytes announced)";
    const char* data = bytes.data() + at + 12;
    std::uint32_t data_crc;
    std::memcpy(&data_crc, data + length, 4);
    RUCHE_REQUIRE(masked_crc32c(data, length) == data_crc)
        << path << ": bad data crc in the record at byte " << at;
    tensorboard::Event event;
    RUCHE_REQUIRE(event.ParseFromArray(data, static_cast<int>(length)))
        << path << ": the record at byte " << at << " is not an Event";
    events.push_back(std::move(event));
    at += 12 + length + 4;
  }
  return events;
}

}  // namespace ruche
