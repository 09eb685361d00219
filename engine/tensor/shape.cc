#include "engine/tensor/shape.h"

#include "engine/error.h"

namespace ruche {

Shape::Shape(std::initializer_list<std::int64_t> dims) {
  for (std::int64_t d : dims) push_back(d);
}

void Shape::push_back(std::int64_t d) {
  RUCHE_REQUIRE(ndim_ < kMaxDims) << "shape: more than " << kMaxDims << " dimensions";
  RUCHE_REQUIRE(d >= -1) << "shape: negative dimension " << d;
  dims_[static_cast<std::size_t>(ndim_++)] = d;
}

std::int64_t Shape::at(int i) const {
  int j = i < 0 ? i + ndim_ : i;
  RUCHE_REQUIRE(j >= 0 && j < ndim_) << "dimension " << i << " out of range for shape " << str();
  return dims_[static_cast<std::size_t>(j)];
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= dims_[static_cast<std::size_t>(i)];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim_ != o.ndim_) return false;
  for (int i = 0; i < ndim_; ++i) {
    if ((*this)[i] != o[i]) return false;
  }
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < ndim_; ++i) {
    if (i) s += ", ";
    s += std::to_string((*this)[i]);
  }
  return s + "]";
}

Shape Shape::contiguous_strides() const {
  Shape s = *this;
  std::int64_t stride = 1;
  for (int i = ndim_ - 1; i >= 0; --i) {
    s[i] = stride;
    stride *= (*this)[i];
  }
  return s;
}

}  // namespace ruche
