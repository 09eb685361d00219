// NumPy .npz files: a zip archive of .npy members (np.savez,
// np.savez_compressed). The format of model weights (RUN/model.npz, names as in
// PyTorch state_dicts) and of npz datasets.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor/tensor.h"

namespace ruche {

// Reads every array of an .npz into CPU tensors, keyed by member name without
// ".npy". Members may be stored or deflated (np.savez_compressed); zip64
// archives are read. Throws ruche::Error naming the file (and member) when it
// is missing, truncated or corrupt (bad CRC, bad central directory), or holds a
// member that is not an .npy array or a dtype npy.h does not support.
std::map<std::string, Tensor> load_npz(const std::string& path);

// The member names of an .npz (without ".npy"), in archive order; reads only
// the directory.
std::vector<std::string> list_npz(const std::string& path);

// Writes `arrays` as an uncompressed .npz that np.load reads, in the given
// order. The archive is written to path + ".tmp", fsynced, then renamed over
// `path`: a crash leaves the old file or the new one, never half of one. Names
// must be unique and non-empty.
void save_npz(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& arrays);

}  // namespace ruche
