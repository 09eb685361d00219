// Reads a TensorBoard event file back: every record's framing and both masked crc32c checked
// (tests, `ruche plot`-style tools), each record parsed as an Event.
#pragma once

#include <string>
#include <vector>

#include "engine/proto/tensorboard.pb.h"

namespace ruche {

// The events of the file at path, in order. A truncated record, a crc that does not match or an
// unparsable Event is a ruche::Error naming the file and the record's byte offset.
std::vector<tensorboard::Event> read_tensorboard_events(const std::string& path);
// The same on the bytes of an event file; `path` names them in errors.
std::vector<tensorboard::Event> parse_tensorboard_events(const std::string& bytes,
                                                         const std::string& path);

}  // namespace ruche
