// A TensorBoard event file (TFRecord framing, masked crc32c, Event protos) read back.
#include "engine/log/tensorboard_reader.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(tfevents) {
  ruche::parse_tensorboard_events(std::string(reinterpret_cast<const char*>(data), size),
                                  "events.out.tfevents");
}
