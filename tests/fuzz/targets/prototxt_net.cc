// A net prototxt (ruche train --net, RUN/net.prototxt, examples/*): text format into NetParameter
// with each layer's line looked up as parse_net (engine/graph/net.cc) does, then written back and
// read again. (parse_net itself lives with Net::build, which would pull every layer and op into
// the fuzz build; these are its lines.)
#include <google/protobuf/text_format.h>

#include "engine/proto/ruche.pb.h"
#include "engine/proto/text_format.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(prototxt_net) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ruche::proto::NetParameter net;
  google::protobuf::TextFormat::ParseInfoTree locations;
  ruche::parse_prototxt(text, "net.prototxt", net, &locations);
  const auto* field = ruche::proto::NetParameter::descriptor()->FindFieldByName("layer");
  for (int i = 0; i < net.layer_size(); ++i) locations.GetLocation(field, i);
  ruche::proto::NetParameter again;
  ruche::parse_prototxt(ruche::to_prototxt(net), "net.prototxt (again)", again);
}
