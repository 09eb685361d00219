// Where a tensor's storage lives: host memory or one CUDA device.
#pragma once

#include <string>

namespace ruche {

struct Device {
  enum class Kind : unsigned char { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;  // CUDA ordinal; 0 for cpu

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {Kind::cuda, index}; }
  bool is_cpu() const { return kind == Kind::cpu; }
  bool is_cuda() const { return kind == Kind::cuda; }
  bool operator==(const Device&) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  // "cpu", "cuda", "cuda:N"; throws ruche::Error otherwise.
  static Device parse(const std::string& text);
};

// The GPU of local rank `local_rank` of `local_size` when `visible_gpus` are visible: the one there
// is (a launcher that gives each rank its own GPU through CUDA_VISIBLE_DEVICES), else GPU
// local_rank; more local ranks than visible GPUs is a ruche::Error naming the counts.
int local_gpu(int visible_gpus, int local_rank, int local_size);

}  // namespace ruche
