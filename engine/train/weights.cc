#include "engine/train/weights.h"

#include <map>

#include "engine/tensor/npz.h"

namespace ruche {
namespace {

bool is_counter(const std::string& name) {
  const std::string suffix = ".num_batches_tracked";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < 8; ++i)
    out.append(i ? ", " : "").append(names[i]);
  if (names.size() > 8) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

}  // namespace

void save_weights(const Net& net, const std::string& path) {
  std::vector<std::pair<std::string, Tensor>> arrays;
  for (auto& [name, view] : net.state_dict()) {
    Tensor host = view.to(Device::cpu());
    if (is_counter(name)) {
      // PyTorch keeps the batch counter as a 0-d int64 tensor.
      Tensor count = Tensor::empty(Shape{}, DType::i64);
      count.data<std::int64_t>()[0] = static_cast<std::int64_t>(host.to_vector<float>()[0]);
      host = count;
    }
    arrays.emplace_back(name, host);
  }
  save_npz(path, arrays);
}

LoadReport load_weights(Net& net, const std::string& path, bool partial) {
  std::map<std::string, Tensor> file = load_npz(path);
  LoadReport report;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination view, source)
  for (auto& [name, view] : net.state_dict()) {
    const auto it = file.find(name);
    if (it == file.end()) {
      report.missing.push_back(name);
      continue;
    }
    Tensor src = it->second;
    file.erase(it);
    if (is_counter(name)) {
      RUCHE_REQUIRE(src.numel() == 1) << path << ": '" << name << "' must hold one number";
      Tensor f = Tensor::empty(view.shape());
      f.data<float>()[0] = src.dtype() == DType::i64
                               ? static_cast<float>(src.data<std::int64_t>()[0])
                               : src.to_vector<float>()[0];
      src = f;
    }
    if (!(src.shape() == view.shape()) || src.dtype() != DType::f32) {
      report.mismatched.push_back(name + " (file " + std::string(dtype_name(src.dtype())) +
                                  src.shape().str() + ", net " + view.shape().str() + ")");
      continue;
    }
    copies.emplace_back(view, src);
  }
  for (const auto& [name, t] : file) report.unexpected.push_back(name);
  if (!partial) {
    RUCHE_REQUIRE(report.missing.empty() && report.unexpected.empty() && report.mismatched.empty())
        << path << ": does not match the net (use --init-partial to load what matches)"
        << (report.missing.empty() ? "" : "; missing: " + join(report.missing))
        << (report.unexpected.empty() ? "" : "; unexpected: " + join(report.unexpected))
        << (report.mismatched.empty() ? "" : "; shape mismatch: " + join(report.mismatched));
  }
  for (auto& [dst, src] : copies) dst.copy_from(src);
  report.loaded = static_cast<int>(copies.size());
  return report;
}

}  // namespace ruche
