// Reading Protobuf text format (prototxt) files, with errors that name file, line and column.
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/text_format.h>

#include <string>

namespace ruche {

// Parses `text` into `message`; `where` names the source in errors ("net.prototxt").
// An unknown field, a bad value or a syntax error throws ruche::Error "where:line:col: what".
// With `locations`, records where each field was read (for errors that name a line later).
void parse_prototxt(const std::string& text, const std::string& where,
                    google::protobuf::Message& message,
                    google::protobuf::TextFormat::ParseInfoTree* locations = nullptr);
// The whole text of a file; a missing file is an error naming it.
std::string read_text_file(const std::string& path);
// Reads and parses a file; a missing file is an error naming it.
void load_prototxt(const std::string& path, google::protobuf::Message& message);
// The text format of `message`, as written to RUN/*.prototxt.
std::string to_prototxt(const google::protobuf::Message& message);

}  // namespace ruche
