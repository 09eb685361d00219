#include "engine/train/export.h"

#include <filesystem>
#include <set>
#include <utility>
#include <vector>

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

}  // namespace

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

int export_weights(const std::string& from, const std::string& to) {
  const std::string weights = weights_of(from);
  const std::map<std::string, Tensor> file = load_npz(weights);
  std::set<std::string> layers;
  const fs::path beside = fs::path(weights).parent_path() / "net.prototxt";
  if (fs::is_regular_file(beside)) {
    const proto::NetParameter net = load_net(beside.string(), nullptr);
    for (const auto& layer : net.layer()) layers.insert(layer.name());
  }
  std::vector<std::pair<std::string, Tensor>> arrays;
  for (const std::string& name : list_npz(weights)) {  // archive order: the state_dict's
    const Tensor& tensor = file.at(name);
    RUCHE_REQUIRE(layers.empty() || layers.count(layer_of(name)))
        << weights << ": '" << name << "' belongs to no layer of " << beside.string();
    if (ends_with(name, ".num_batches_tracked")) {
      RUCHE_REQUIRE(tensor.numel() == 1) << weights << ": '" << name << "' must hold one number";
      Tensor count = Tensor::empty(Shape{}, DType::i64);
      count.data<std::int64_t>()[0] = tensor.dtype() == DType::i64
                                          ? tensor.data<std::int64_t>()[0]
                                          : static_cast<std::int64_t>(tensor.to_vector<float>()[0]);
      arrays.emplace_back(name, count);
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
