// ConfusionMatrix: C x C counts, rows = true class, columns = predicted class, kept as one flat
// int64 array so batches accumulate without allocation and ranks can all-reduce it in place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ruche {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes = 0);

  int num_classes() const { return classes_; }
  // Counts one (or `count`) sample of class `truth` predicted as `predicted`; both in [0, C).
  void add(int truth, int predicted, std::int64_t count = 1);
  // Adds another matrix of the same size (another rank's, another shard's).
  void merge(const ConfusionMatrix& other);
  void reset();

  std::int64_t at(int truth, int predicted) const {
    return counts_[static_cast<std::size_t>(truth) * classes_ + predicted];
  }
  std::int64_t total() const;
  std::int64_t correct() const;         // the diagonal
  std::int64_t support(int c) const;    // samples whose true class is c (row sum)
  std::int64_t predicted(int c) const;  // samples predicted as c (column sum)

  // Row-major C*C counts; mutable so a communicator can all-reduce (sum) them in place.
  std::vector<std::int64_t>& counts() { return counts_; }
  const std::vector<std::int64_t>& counts() const { return counts_; }

  // A fixed-width text table, rows true and columns predicted, headed by class names cut to
  // `max_name_width` characters ("ca.." for "cardigan" at width 4). Missing names are indices.
  std::string render(const std::vector<std::string>& class_names = {},
                     int max_name_width = 12) const;

 private:
  int classes_ = 0;
  std::vector<std::int64_t> counts_;
};

// `name` cut to `width` characters, ending in ".." when cut (shared by the metric tables).
std::string truncate_name(const std::string& name, int width);
// class_names[c], or c as a number when there is no such name.
std::string class_name(const std::vector<std::string>& class_names, int c);

}  // namespace ruche
