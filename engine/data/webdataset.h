// The WebDataset layout of a .tar shard, as the webdataset library reads it: consecutive members
// with the same key make one sample. A member's key is its path up to the first dot of its last
// component, the rest is its extension, lowercased ("n01440764/n01440764_10026.JPEG" is key
// "n01440764/n01440764_10026", extension "jpeg"). ruche takes from a sample:
//   the image   .jpg, .jpeg or .png (the first of them in the sample)
//   the label   .cls (an integer as text), else .json (its "label" field: an integer or a class
//               name), else .txt (an integer or a class name); names are looked up in the class
//               list (classes.txt / labels.txt beside the shards)
// Other members of a sample (.json metadata, captions, ...) are carried along unread. Members
// that are not part of any sample (directories, links, PAX global headers, names without an
// extension, webdataset's __meta__ files, groups with neither an image nor a label) are skipped
// and counted; a sample with an image and no label, or the reverse, is named and skipped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ruche {

// Splits a member name into key and lowercased extension; false when the name has no extension
// (no dot in its last component, or one at its start) or is a __meta__ style name.
bool webdataset_key(std::string_view name, std::string* key, std::string* extension);

bool is_image_extension(const std::string& extension);  // jpg, jpeg, png
// 0 for cls, 1 json, 2 txt (the order a label is taken in); -1 for other extensions.
int label_rank(const std::string& extension);

// A label as a member holds it: a class index, or a class name to look up.
struct SampleLabel {
  bool found = false;
  std::int64_t index = -1;  // >= 0 when the member held an integer
  std::string name;         // else the class name
};

// Reads the label of a member with extension `extension` (label_rank >= 0); found is false for a
// .json without a "label" field. `what` names the member in errors (unreadable JSON, an empty
// label, a negative number).
SampleLabel parse_label(const std::string& extension, const std::uint8_t* data, std::size_t size,
                        const std::string& what);

}  // namespace ruche
