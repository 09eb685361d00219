#include "engine/data/webdataset.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "engine/error.h"

namespace ruche {

bool webdataset_key(std::string_view name, std::string* key, std::string* extension) {
  const std::size_t slash = name.rfind('/');
  const std::size_t base = slash == std::string_view::npos ? 0 : slash + 1;
  const std::size_t dot = name.find('.', base);
  if (dot == std::string_view::npos || dot == base) return false;
  const std::string_view stem = name.substr(base, dot - base);
  // webdataset skips __key__-style files at the top level (its meta files).
  if (slash == std::string_view::npos && stem.size() >= 4 && stem.starts_with("__") &&
      stem.ends_with("__")) {
    return false;
  }
  *key = std::string(name.substr(0, dot));
  extension->assign(name.substr(dot + 1));
  std::transform(extension->begin(), extension->end(), extension->begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return true;
}

bool is_image_extension(const std::string& e) { return e == "jpg" || e == "jpeg" || e == "png"; }

int label_rank(const std::string& e) {
  if (e == "cls") return 0;
  if (e == "json") return 1;
  if (e == "txt") return 2;
  return -1;
}

namespace {

std::string trimmed(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

// An integer or a name from text.
SampleLabel label_of_text(const std::string& text, const std::string& what) {
  RUCHE_REQUIRE(!text.empty()) << what << ": an empty label";
  SampleLabel l;
  l.found = true;
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && end == text.data() + text.size()) {
    RUCHE_REQUIRE(v >= 0) << what << ": label " << v << " is negative";
    l.index = v;
  } else {
    l.name = text;
  }
  return l;
}

}  // namespace

SampleLabel parse_label(const std::string& extension, const std::uint8_t* data, std::size_t size,
                        const std::string& what) {
  const std::string text = trimmed(std::string_view(reinterpret_cast<const char*>(data), size));
  if (extension != "json") return label_of_text(text, what);
  google::protobuf::Struct object;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &object);
  RUCHE_REQUIRE(status.ok()) << what << ": not a JSON object (" << status.ToString() << ")";
  const auto it = object.fields().find("label");
  if (it == object.fields().end()) return {};
  const google::protobuf::Value& v = it->second;
  if (v.kind_case() == google::protobuf::Value::kStringValue) {
    return label_of_text(trimmed(v.string_value()), what);
  }
  RUCHE_REQUIRE(v.kind_case() == google::protobuf::Value::kNumberValue &&
                v.number_value() == std::floor(v.number_value()) && v.number_value() >= 0 &&
                v.number_value() < 9.0e15)
      << what << ": \"label\" must be a whole number >= 0 or a class name";
  SampleLabel l;
  l.found = true;
  l.index = static_cast<std::int64_t>(v.number_value());
  return l;
}

}  // namespace ruche
