// CIFAR-10 and CIFAR-100 binary batches (the "binary version" archives).
//   CIFAR-10:  data_batch_1.bin .. data_batch_5.bin, test_batch.bin; records of 1 label byte and
//              3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows of 32).
//   CIFAR-100: train.bin, test.bin; records of a coarse and a fine label byte, then 3072 pixels.
//              ruche uses the fine labels (100 classes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace ruche {

enum class CifarKind { none, cifar10, cifar100 };

// Which CIFAR layout dir holds, if any.
CifarKind cifar_kind(const std::string& dir);

// Training and test sets of dir. Class names from batches.meta.txt (CIFAR-10) or
// fine_label_names.txt (CIFAR-100) when present, else CIFAR-10's names or numbers.
DataSources load_cifar_dir(const std::string& dir);

// Parses records of one binary batch file (bytes as read); `where` names it in errors.
// Appends to pixels and labels.
void parse_cifar_batch(const std::string& bytes, CifarKind kind, const std::string& where,
                       std::vector<std::uint8_t>* pixels, std::vector<std::int32_t>* labels);

const std::vector<std::string>& cifar10_class_names();

}  // namespace ruche
