// Tensor: a typed, shaped, strided view of a Storage on one device, in a layout (plain, or one of
// oneDNN's blocked ones: engine/tensor/layout.h). Copies of a Tensor and the views made from it
// (view, narrow, transpose) share storage; clone() and to() copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/error.h"
#include "engine/tensor/device.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/layout.h"
#include "engine/tensor/shape.h"
#include "engine/tensor/storage.h"

namespace ruche {

class Tensor {
 public:
  Tensor() = default;  // undefined: holds no storage

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  // A CPU f32 tensor holding `values` (their count must match the shape).
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  // Views memory owned elsewhere; the caller keeps it alive.
  static Tensor from_blob(void* data, const Shape& shape, DType dtype,
                          Device device = Device::cpu());
  // A view of `storage` from element `offset` on, contiguous.
  static Tensor view_of(std::shared_ptr<Storage> storage, std::int64_t offset, const Shape& shape,
                        DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int ndim() const { return shape_.ndim(); }
  std::int64_t size(int dim) const { return shape_.at(dim); }
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  std::int64_t offset() const { return offset_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // Blocked tensors are contiguous in their layout: their strides are those of the plain shape.
  bool is_contiguous() const;
  Layout layout() const { return layout_; }
  bool is_plain() const { return layout_ == Layout::plain; }
  bool shares_storage(const Tensor& other) const { return storage_ && storage_ == other.storage_; }

  // Address of the first element (on the tensor's device).
  void* raw_data() const;
  // Typed address of the first element; throws when T is not the tensor's dtype.
  template <typename T>
  T* data() const {
    check_dtype(DTypeOf<T>::value);
    return static_cast<T*>(raw_data());
  }

  // Same storage and shape, its bytes read as `layout`: a tag, no data moves (ops::reorder
  // converts). A blocked layout needs a 4-d tensor whose channels are a multiple of the block.
  Tensor with_layout(Layout layout) const;

  // The views below need a plain tensor, but narrow() on dim 0 (the batch, outermost in every
  // layout); an InternalError says which view met a blocked tensor.
  // Same storage, new shape; needs a contiguous tensor. One dimension may be -1 (inferred).
  Tensor view(const Shape& shape) const;
  // Same storage, dims [start_dim, end] merged into one (torch.flatten).
  Tensor flatten(int start_dim = 1) const;
  // Same storage, `length` entries of `dim` from `start`.
  Tensor narrow(int dim, std::int64_t start, std::int64_t length) const;
  // Same storage, dims d0 and d1 swapped (not contiguous afterwards).
  Tensor transpose(int d0, int d1) const;

  Tensor contiguous() const;  // this, or a contiguous copy when strided
  Tensor clone() const;       // a contiguous copy on the same device
  Tensor to(Device device) const;
  // Copies src's elements into this tensor; same shape, dtype and layout, any devices.
  void copy_from(const Tensor& src);
  void zero();
  void fill(float value);  // f32 tensors

  // The elements, in row-major order, copied to the host (a plain tensor).
  template <typename T = float>
  std::vector<T> to_vector() const;
  float item() const;  // the value of a one-element f32 tensor

  std::string str() const;  // "f32[2, 3] cpu", "f32[8, 32, 14, 14] nChw16c cpu"

  void check_dtype(DType expected, std::string_view what = "tensor") const;
  void check_device(Device expected, std::string_view what = "tensor") const;
  void check_shape(const Shape& expected, std::string_view what = "tensor") const;

 private:
  std::shared_ptr<Storage> storage_;
  std::int64_t offset_ = 0;  // in elements
  Shape shape_;
  Shape strides_;  // in elements
  DType dtype_ = DType::f32;
  Layout layout_ = Layout::plain;
};

// Throws ruche::Error naming `op` when a and b differ in shape / dtype / device.
void check_same_shape(const Tensor& a, const Tensor& b, std::string_view op);
void check_same_dtype(const Tensor& a, const Tensor& b, std::string_view op);
void check_same_device(const Tensor& a, const Tensor& b, std::string_view op);

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  RUCHE_REQUIRE(static_cast<std::int64_t>(values.size()) == shape.numel())
      << "from_vector: " << values.size() << " values do not fill shape " << shape.str();
  Tensor t = empty(shape, DTypeOf<T>::value);
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  check_dtype(DTypeOf<T>::value);
  RUCHE_CHECK(is_plain()) << "to_vector of " << str() << ": reorder it to plain first";
  Tensor host = contiguous().to(Device::cpu());
  const T* p = host.data<T>();
  return std::vector<T>(p, p + numel());
}

}  // namespace ruche
