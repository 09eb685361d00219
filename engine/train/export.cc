#include "engine/train/export.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/manifest.h"
#include "engine/error.h"
#include "engine/graph/net.h"
#include "engine/proto/text_format.h"
#include "engine/tensor/npz.h"
#include "engine/train/eval_run.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The layer a state_dict name belongs to: everything before the last dot.
std::string layer_of(const std::string& name) {
  const std::size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

// num_batches_tracked as PyTorch keeps it: a 0-d int64 tensor.
Tensor counter_of(const std::string& file, const std::string& name, const Tensor& tensor) {
  RUCHE_REQUIRE(tensor.numel() == 1) << file << ": '" << name << "' must hold one number";
  Tensor count = Tensor::empty(Shape{}, DType::i64);
  count.data<std::int64_t>()[0] = tensor.dtype() == DType::i64
                                      ? tensor.data<std::int64_t>()[0]
                                      : static_cast<std::int64_t>(tensor.to_vector<float>()[0]);
  return count;
}

// The first line of a small text file, trimmed ("step-00012000").
std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

}  // namespace

std::string checkpoint_of(const std::string& from) {
  if (from.empty()) return "";
  const fs::path path(from);
  if (fs::is_regular_file(path) && path.filename() == "latest") {
    const std::string step = first_line(path);
    RUCHE_REQUIRE(!step.empty()) << from << ": names no checkpoint";
    const fs::path dir = path.parent_path() / step;
    RUCHE_REQUIRE(fs::is_directory(dir))
        << from << ": names " << dir.string() << ", which does not exist";
    return dir.string();
  }
  if (!fs::is_directory(path)) return "";
  if (fs::is_regular_file(path / "manifest.pb")) return from;
  if (fs::is_regular_file(path / "model.npz")) return "";  // a run: its last weights
  if (!committed_checkpoints(from).empty() ||
      !committed_checkpoints((path / "ckpt").string()).empty()) {
    return find_checkpoint(from);
  }
  return "";
}

std::string weights_of(const std::string& from) {
  RUCHE_REQUIRE(!from.empty()) << "--from: no run directory or weights file given";
  if (fs::is_directory(from)) {
    const fs::path model = fs::path(from) / "model.npz";
    RUCHE_REQUIRE(fs::is_regular_file(model)) << from << ": no model.npz in the run directory";
    return model.string();
  }
  RUCHE_REQUIRE(fs::is_regular_file(from)) << from << ": no such run directory or weights file";
  return from;
}

int export_weights(const std::string& from, const std::string& to, const std::string& net_file) {
  if (const std::string checkpoint = checkpoint_of(from); !checkpoint.empty()) {
    const LoadedCheckpoint loaded = load_checkpoint(checkpoint);
    std::vector<std::pair<std::string, Tensor>> arrays = checkpoint_weights(loaded);
    for (auto& [name, tensor] : arrays) {
      if (ends_with(name, ".num_batches_tracked")) tensor = counter_of(checkpoint, name, tensor);
    }
    RUCHE_REQUIRE(!arrays.empty()) << checkpoint << ": the checkpoint holds no parameters";
    save_npz(to, arrays);
    return static_cast<int>(arrays.size());
  }
  const std::string weights = weights_of(from);
  const std::map<std::string, Tensor> file = load_npz(weights);
  std::set<std::string> layers;
  const fs::path beside =
      net_file.empty() ? fs::path(weights).parent_path() / "net.prototxt" : fs::path(net_file);
  if (fs::is_regular_file(beside) || !net_file.empty()) {
    const proto::NetParameter net = load_net(beside.string(), nullptr);
    for (const auto& layer : net.layer()) layers.insert(layer.name());
  }
  std::vector<std::pair<std::string, Tensor>> arrays;
  for (const std::string& name : list_npz(weights)) {  // archive order: the state_dict's
    const Tensor& tensor = file.at(name);
    if (!net_file.empty() && !layers.count(layer_of(name))) continue;  // not in the --net
    RUCHE_REQUIRE(layers.empty() || layers.count(layer_of(name)))
        << weights << ": '" << name << "' belongs to no layer of " << beside.string();
    if (ends_with(name, ".num_batches_tracked")) {
      arrays.emplace_back(name, counter_of(weights, name, tensor));
      continue;
    }
    RUCHE_REQUIRE(tensor.dtype() == DType::f32)
        << weights << ": '" << name << "' is " << dtype_name(tensor.dtype())
        << ", expected float32";
    arrays.emplace_back(name, tensor);
  }
  save_npz(to, arrays);
  return static_cast<int>(arrays.size());
}

std::string export_net(const std::string& from) {
  RUCHE_REQUIRE(!from.empty()) << "--from: no run directory or weights file given";
  if (const std::string checkpoint = checkpoint_of(from); !checkpoint.empty()) {
    const proto::CheckpointManifest manifest = checkpoint_manifest::read_manifest(checkpoint);
    RUCHE_REQUIRE(!manifest.net().empty()) << checkpoint << "/manifest.pb: holds no net";
    return to_prototxt(parse_net(manifest.net(), checkpoint + "/manifest.pb (net)", nullptr));
  }
  std::string net_file;
  if (fs::is_directory(from)) {
    net_file = (fs::path(from) / "net.prototxt").string();
    RUCHE_REQUIRE(fs::is_regular_file(net_file))
        << from << ": no net.prototxt in the run directory";
  } else {
    net_file = locate_run_files(from).net_file;
  }
  return to_prototxt(load_net(net_file, nullptr));
}

}  // namespace ruche
