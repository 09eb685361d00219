// A checkpoint's parameters and buffers as a state_dict (for `ruche export --from CKPT`).
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/manifest.h"
#include "engine/error.h"
#include "engine/graph/net.h"

namespace ruche {
namespace {

// "conv1" of "conv1.weight" (layer names may hold dots, suffixes do not).
std::string layer_of(const std::string& name) {
  const std::size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

std::string suffix_of(const std::string& name) {
  const std::size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

int suffix_rank(const std::string& name) {
  const std::string s = suffix_of(name);
  return s == "weight" ? 0 : s == "bias" ? 1 : 2;
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> checkpoint_weights(const LoadedCheckpoint& checkpoint) {
  const proto::CheckpointManifest m = checkpoint_manifest::read_manifest(checkpoint.dir);
  const std::string manifest_file =
      (std::filesystem::path(checkpoint.dir) / checkpoint_manifest::kManifestFile).string();
  // Which region each byte offset belongs to.
  auto region_of = [&](std::int64_t offset) -> std::string {
    for (const auto& r : m.regions()) {
      if (offset >= r.offset() && offset < r.offset() + r.bytes()) return r.name();
    }
    return "";
  };
  struct Item {
    const StateTensor* tensor;
    bool buffer;
  };
  std::map<std::string, std::vector<Item>> by_layer;
  for (const StateTensor& t : checkpoint.tensors) {
    const std::string region = region_of(t.offset);
    if (region != "params" && region != "buffers") continue;
    RUCHE_REQUIRE(t.dtype == DType::f32)
        << manifest_file << ": " << t.name << " is " << dtype_name(t.dtype) << ", expected f32";
    by_layer[layer_of(t.name)].push_back({&t, region == "buffers"});
  }
  std::vector<std::string> order;
  if (!checkpoint.meta.net.empty()) {
    const proto::NetParameter net =
        parse_net(checkpoint.meta.net, manifest_file + " (net)", nullptr);
    for (const auto& layer : net.layer()) order.push_back(layer.name());
  }
  for (const auto& [layer, items] : by_layer) {  // layers the net text does not name, last
    if (std::find(order.begin(), order.end(), layer) == order.end()) order.push_back(layer);
  }
  std::vector<std::pair<std::string, Tensor>> out;
  for (const std::string& layer : order) {
    auto it = by_layer.find(layer);
    if (it == by_layer.end()) continue;
    std::vector<Item> items = it->second;
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      if (a.buffer != b.buffer) return !a.buffer;
      if (!a.buffer) {
        const int ra = suffix_rank(a.tensor->name), rb = suffix_rank(b.tensor->name);
        if (ra != rb) return ra < rb;
      }
      return a.tensor->offset < b.tensor->offset;
    });
    for (const Item& item : items) {
      const StateTensor& t = *item.tensor;
      Tensor host = Tensor::empty(t.shape, DType::f32);
      if (t.bytes > 0) {
        std::memcpy(host.raw_data(), checkpoint.state.data() + t.offset,
                    static_cast<std::size_t>(t.bytes));
      }
      out.emplace_back(t.name, host);
    }
  }
  return out;
}

}  // namespace ruche
