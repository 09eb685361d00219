#include "tools/flags.h"

#include <cctype>

#include "engine/error.h"
#include "engine/models/models.h"
#include "ops/cuda/runtime.h"

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

void DeviceFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--device", device, "cpu, cuda (this rank's local GPU) or cuda:N")
      ->capture_default_str();
  cmd->add_option("--precision", precision,
                  "GPU arithmetic: fp32 (strict, matches the CPU), tf32, bf16, fp16 (mixed, "
                  "fp32 master weights)")
      ->capture_default_str();
  cmd->add_flag("--cudnn-benchmark", cudnn_benchmark,
                "time cuDNN's convolution algorithms once per shape and keep the fastest");
  cmd->add_flag("--deterministic", deterministic,
                "GPU: deterministic cuDNN algorithms only, so reruns give the same numbers "
                "(slower; off: cuDNN's fastest, as PyTorch)");
}

Device DeviceFlags::resolve(int local_rank, int local_size) const {
  Device d = Device::parse(device);
  if (d.is_cpu()) return d;
  std::string why;
  const auto gpus = cuda::list_devices(&why);
  RUCHE_REQUIRE(!gpus.empty()) << "--device " << device << ": no CUDA device (" << why << ")";
  const int visible = static_cast<int>(gpus.size());
  const bool explicit_index = device.find(':') != std::string::npos;
  if (!explicit_index) d.index = local_gpu(visible, local_rank, local_size);
  RUCHE_REQUIRE(d.index < visible)
      << "--device " << d.str() << ": this process sees " << visible << " GPU(s)";
  return d;
}

ops::GpuMath DeviceFlags::gpu_math() const {
  ops::GpuMath math;
  math.precision = ops::parse_precision(precision);
  math.cudnn_benchmark = cudnn_benchmark;
  math.deterministic = deterministic;
  return math;
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
