#include "engine/proto/text_format.h"

#include <google/protobuf/io/tokenizer.h>

#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace ruche {
namespace {

// Keeps the first error; Protobuf reports 0-based lines and columns.
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!has_error_) {
      has_error_ = true;
      line_ = line + 1;
      column_ = column + 1;
      message_ = message;
    }
  }
  bool has_error_ = false;
  int line_ = 0;
  int column_ = 0;
  std::string message_;
};

}  // namespace

void parse_prototxt(const std::string& text, const std::string& where,
                    google::protobuf::Message& message,
                    google::protobuf::TextFormat::ParseInfoTree* locations) {
  FirstError errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (locations) parser.WriteLocationsTo(locations);
  if (!parser.ParseFromString(text, &message)) {
    RUCHE_FAIL() << where << ":" << errors.line_ << ":" << errors.column_ << ": "
                 << (errors.has_error_ ? errors.message_ : "cannot parse") << " (in "
                 << message.GetDescriptor()->name() << ")";
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  RUCHE_REQUIRE(in) << path << ": cannot open";
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void load_prototxt(const std::string& path, google::protobuf::Message& message) {
  parse_prototxt(read_text_file(path), path, message);
}

std::string to_prototxt(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::TextFormat::PrintToString(message, &out);
  return out;
}

}  // namespace ruche
