#include "engine/metrics/confusion_matrix.h"

#include <algorithm>
#include <sstream>

#include "engine/error.h"

namespace ruche {

ConfusionMatrix::ConfusionMatrix(int num_classes)
    : classes_(num_classes),
      counts_(static_cast<std::size_t>(std::max(num_classes, 0)) * std::max(num_classes, 0)) {
  RUCHE_REQUIRE(num_classes >= 0) << "confusion matrix: " << num_classes << " classes";
}

void ConfusionMatrix::add(int truth, int predicted, std::int64_t count) {
  RUCHE_REQUIRE(truth >= 0 && truth < classes_)
      << "confusion matrix: label " << truth << " outside [0, " << classes_ << ")";
  RUCHE_CHECK(predicted >= 0 && predicted < classes_) << "prediction " << predicted;
  counts_[static_cast<std::size_t>(truth) * classes_ + predicted] += count;
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  RUCHE_CHECK(other.classes_ == classes_)
      << "merging a " << other.classes_ << "-class confusion matrix into a " << classes_
      << "-class one";
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

void ConfusionMatrix::reset() { std::fill(counts_.begin(), counts_.end(), 0); }

std::int64_t ConfusionMatrix::total() const {
  std::int64_t sum = 0;
  for (std::int64_t v : counts_) sum += v;
  return sum;
}

std::int64_t ConfusionMatrix::correct() const {
  std::int64_t sum = 0;
  for (int c = 0; c < classes_; ++c) sum += at(c, c);
  return sum;
}

std::int64_t ConfusionMatrix::support(int c) const {
  std::int64_t sum = 0;
  for (int p = 0; p < classes_; ++p) sum += at(c, p);
  return sum;
}

std::int64_t ConfusionMatrix::predicted(int c) const {
  std::int64_t sum = 0;
  for (int t = 0; t < classes_; ++t) sum += at(t, c);
  return sum;
}

std::string truncate_name(const std::string& name, int width) {
  if (static_cast<int>(name.size()) <= width) return name;
  if (width <= 2) return name.substr(0, std::max(width, 0));
  return name.substr(0, width - 2) + "..";
}

std::string class_name(const std::vector<std::string>& class_names, int c) {
  if (c < static_cast<int>(class_names.size()) && !class_names[c].empty()) return class_names[c];
  return std::to_string(c);
}

std::string ConfusionMatrix::render(const std::vector<std::string>& class_names,
                                    int max_name_width) const {
  const std::string corner = "true \\ pred";
  std::vector<std::string> names(classes_);
  std::size_t row_width = corner.size();
  std::size_t col_width = 1;
  for (int c = 0; c < classes_; ++c) {
    names[c] = truncate_name(class_name(class_names, c), max_name_width);
    row_width = std::max(row_width, names[c].size());
    col_width = std::max(col_width, names[c].size());
  }
  for (std::int64_t v : counts_) col_width = std::max(col_width, std::to_string(v).size());

  std::ostringstream out;
  auto cell = [&](const std::string& s, std::size_t width) {
    out << std::string(width - std::min(width, s.size()), ' ') << s;
  };
  out << corner << std::string(row_width - corner.size(), ' ');
  for (int p = 0; p < classes_; ++p) {
    out << "  ";
    cell(names[p], col_width);
  }
  out << '\n';
  for (int t = 0; t < classes_; ++t) {
    out << names[t] << std::string(row_width - names[t].size(), ' ');
    for (int p = 0; p < classes_; ++p) {
      out << "  ";
      cell(std::to_string(at(t, p)), col_width);
    }
    out << '\n';
  }
  return out.str();
}

}  // namespace ruche
