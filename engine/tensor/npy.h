// NumPy .npy files: the interchange format with PyTorch (test references, weights).
#pragma once

#include <string>

#include "engine/tensor/tensor.h"

namespace ruche {

// Reads a little-endian, C-ordered .npy (float32, int32, int64, uint8) into a CPU tensor.
// Throws ruche::Error naming the file on a missing, truncated or unsupported file.
Tensor load_npy(const std::string& path);
// Parses .npy bytes (as stored in a file or an npz member); `where` names them in errors.
Tensor parse_npy(const std::string& bytes, const std::string& where);
// The .npy bytes of t (copied to the host).
std::string to_npy(const Tensor& t);
void save_npy(const std::string& path, const Tensor& t);

}  // namespace ruche
