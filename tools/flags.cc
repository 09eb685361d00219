#include "tools/flags.h"

#include <cctype>

#include "engine/error.h"
#include "engine/models/models.h"

namespace ruche::tools {

Shape parse_shape_flag(const std::string& flag, const std::string& text) {
  Shape shape;
  if (text.empty()) return shape;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string part = text.substr(start, comma == std::string::npos ? comma : comma - start);
    bool digits = !part.empty() && part.size() < 10;
    for (char c : part) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    RUCHE_REQUIRE(digits && std::stol(part) > 0)
        << flag << " " << text << ": expected C,H,W as positive integers (e.g. 3,32,32)";
    shape.push_back(std::stol(part));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  RUCHE_REQUIRE(shape.ndim() <= 3)
      << flag << " " << text << ": expected at most three sizes, C,H,W (e.g. 3,32,32)";
  return shape;
}

proto::NetParameter net_from_flags(const std::string& model, const std::string& net_file,
                                   const Shape& input, int classes, NetSource* source) {
  RUCHE_REQUIRE(model.empty() != net_file.empty()) << "give --model NAME or --net FILE (one)";
  if (!net_file.empty()) return load_net(net_file, source);
  RUCHE_REQUIRE(classes >= 0) << "--classes " << classes << ": expected a positive number";
  if (source) source->file = "--model " + model;
  return builtin_model(model, ModelOptions{input, classes});
}

}  // namespace ruche::tools
