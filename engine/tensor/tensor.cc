#include "engine/tensor/tensor.h"

#include <cstring>

#include "engine/tensor/allocator.h"

namespace ruche {
namespace {

// Copies a strided host tensor element by element into contiguous dst (generic over element size).
void gather_strided(const Tensor& src, void* dst) {
  const std::size_t esize = dtype_size(src.dtype());
  const auto* base = static_cast<const unsigned char*>(src.raw_data());
  auto* out = static_cast<unsigned char*>(dst);
  const int nd = src.ndim();
  std::int64_t index[Shape::kMaxDims] = {};
  const std::int64_t n = src.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t off = 0;
    for (int d = 0; d < nd; ++d) off += index[d] * src.strides()[d];
    std::memcpy(out + static_cast<std::size_t>(i) * esize,
                base + static_cast<std::size_t>(off) * esize, esize);
    for (int d = nd - 1; d >= 0; --d) {
      if (++index[d] < src.shape()[d]) break;
      index[d] = 0;
    }
  }
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  for (int i = 0; i < shape.ndim(); ++i) {
    RUCHE_REQUIRE(shape[i] >= 0) << "empty: bad shape " << shape.str();
  }
  t.storage_ =
      Storage::allocate(static_cast<std::size_t>(shape.numel()) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.strides_ = shape.contiguous_strides();
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  return from_vector<float>(values, shape);
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, Device device) {
  auto storage =
      Storage::borrow(data, static_cast<std::size_t>(shape.numel()) * dtype_size(dtype), device);
  return view_of(std::move(storage), 0, shape, dtype);
}

Tensor Tensor::view_of(std::shared_ptr<Storage> storage, std::int64_t offset, const Shape& shape,
                       DType dtype) {
  RUCHE_CHECK(storage != nullptr);
  const std::size_t end = static_cast<std::size_t>(offset + shape.numel()) * dtype_size(dtype);
  RUCHE_CHECK(offset >= 0 && end <= storage->bytes())
      << "view of " << shape.str() << " at " << offset << " past storage of " << storage->bytes()
      << " bytes";
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_ = offset;
  t.shape_ = shape;
  t.strides_ = shape.contiguous_strides();
  t.dtype_ = dtype;
  return t;
}

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  RUCHE_CHECK(defined()) << "use of an undefined tensor";
  return static_cast<unsigned char*>(storage_->data()) +
         static_cast<std::size_t>(offset_) * dtype_size(dtype_);
}

Tensor Tensor::with_layout(Layout layout) const {
  RUCHE_CHECK(layout == Layout::plain ||
              (ndim() == 4 && layout_fits(layout, size(1)) && is_contiguous()))
      << "layout " << layout_name(layout) << " for " << str()
      << ": needs a contiguous [N, C, H, W] tensor with C a multiple of its channel block";
  Tensor t = *this;
  t.layout_ = layout;
  return t;
}

Tensor Tensor::view(const Shape& shape) const {
  RUCHE_CHECK(is_plain()) << "view of " << str() << ": reorder it to plain first";
  RUCHE_REQUIRE(is_contiguous()) << "view: tensor " << str() << " is not contiguous";
  Shape s = shape;
  int infer = -1;
  std::int64_t known = 1;
  for (int i = 0; i < s.ndim(); ++i) {
    if (s[i] == -1) {
      RUCHE_REQUIRE(infer < 0) << "view: more than one -1 in " << shape.str();
      infer = i;
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    RUCHE_REQUIRE(known > 0 && numel() % known == 0)
        << "view: cannot infer -1 in " << shape.str() << " from " << numel() << " elements";
    s[infer] = numel() / known;
  }
  RUCHE_REQUIRE(s.numel() == numel())
      << "view: shape " << s.str() << " does not hold the " << numel() << " elements of " << str();
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = s.contiguous_strides();
  return t;
}

Tensor Tensor::flatten(int start_dim) const {
  if (start_dim < 0) start_dim += ndim();
  RUCHE_REQUIRE(start_dim >= 0 && start_dim < std::max(ndim(), 1))
      << "flatten: start_dim " << start_dim << " out of range for " << str();
  Shape s;
  for (int i = 0; i < start_dim; ++i) s.push_back(shape_[i]);
  std::int64_t rest = 1;
  for (int i = start_dim; i < ndim(); ++i) rest *= shape_[i];
  s.push_back(rest);
  return view(s);
}

Tensor Tensor::narrow(int dim, std::int64_t start, std::int64_t length) const {
  if (dim < 0) dim += ndim();
  RUCHE_REQUIRE(dim >= 0 && dim < ndim()) << "narrow: dim out of range for " << str();
  RUCHE_CHECK(is_plain() || dim == 0)
      << "narrow of dim " << dim << " of " << str() << ": reorder it to plain first";
  RUCHE_REQUIRE(start >= 0 && length >= 0 && start + length <= shape_[dim])
      << "narrow: [" << start << ", " << start + length << ") outside dim " << dim << " of "
      << str();
  Tensor t = *this;
  t.offset_ += start * strides_[dim];
  t.shape_[dim] = length;
  return t;
}

Tensor Tensor::transpose(int d0, int d1) const {
  if (d0 < 0) d0 += ndim();
  if (d1 < 0) d1 += ndim();
  RUCHE_REQUIRE(d0 >= 0 && d0 < ndim() && d1 >= 0 && d1 < ndim())
      << "transpose: dims out of range for " << str();
  RUCHE_CHECK(is_plain()) << "transpose of " << str() << ": reorder it to plain first";
  Tensor t = *this;
  std::swap(t.shape_[d0], t.shape_[d1]);
  std::swap(t.strides_[d0], t.strides_[d1]);
  return t;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.layout_ = layout_;
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor t = empty(shape_, dtype_, device);
  t.layout_ = layout_;
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  check_same_shape(*this, src, "copy");
  check_same_dtype(*this, src, "copy");
  RUCHE_CHECK(layout_ == src.layout_)
      << "copy of " << src.str() << " into " << str() << ": layouts differ (ops::reorder converts)";
  RUCHE_REQUIRE(is_contiguous()) << "copy: destination " << str() << " is not contiguous";
  if (src.is_contiguous()) {
    copy_bytes(raw_data(), device(), src.raw_data(), src.device(), nbytes());
    return;
  }
  RUCHE_REQUIRE(src.device().is_cpu())
      << "copy: strided source on " << src.device().str() << " (make it contiguous there first)";
  if (device().is_cpu()) {
    gather_strided(src, raw_data());
  } else {
    Tensor host = empty(shape_, dtype_);
    gather_strided(src, host.raw_data());
    copy_bytes(raw_data(), device(), host.raw_data(), host.device(), nbytes());
  }
}

void Tensor::zero() {
  RUCHE_REQUIRE(is_contiguous()) << "zero: tensor " << str() << " is not contiguous";
  zero_bytes(raw_data(), device(), nbytes());
}

void Tensor::fill(float value) {
  check_dtype(DType::f32, "fill");
  RUCHE_REQUIRE(is_contiguous()) << "fill: tensor " << str() << " is not contiguous";
  if (device().is_cpu()) {
    float* p = data<float>();
    for (std::int64_t i = 0; i < numel(); ++i) p[i] = value;
  } else {
    Tensor host = empty(shape_, dtype_);
    host.fill(value);
    copy_from(host);
  }
}

float Tensor::item() const {
  RUCHE_REQUIRE(numel() == 1) << "item: tensor " << str() << " has more than one element";
  check_dtype(DType::f32, "item");
  float value;  // read straight into a float: no allocation, it runs every step
  copy_bytes(&value, Device::cpu(), raw_data(), device(), sizeof value);
  return value;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  const std::string layout = is_plain() ? "" : std::string(layout_name(layout_)) + " ";
  return std::string(dtype_name(dtype_)) + shape_.str() + " " + layout + device().str();
}

void Tensor::check_dtype(DType expected, std::string_view what) const {
  RUCHE_REQUIRE(dtype_ == expected)
      << what << ": expected " << dtype_name(expected) << ", got " << str();
}

void Tensor::check_device(Device expected, std::string_view what) const {
  RUCHE_REQUIRE(device() == expected)
      << what << ": expected a tensor on " << expected.str() << ", got " << str();
}

void Tensor::check_shape(const Shape& expected, std::string_view what) const {
  RUCHE_REQUIRE(shape_ == expected)
      << what << ": expected shape " << expected.str() << ", got " << shape_.str();
}

void check_same_shape(const Tensor& a, const Tensor& b, std::string_view op) {
  RUCHE_REQUIRE(a.shape() == b.shape())
      << op << ": shape mismatch, " << a.shape().str() << " vs " << b.shape().str();
}

void check_same_dtype(const Tensor& a, const Tensor& b, std::string_view op) {
  RUCHE_REQUIRE(a.dtype() == b.dtype())
      << op << ": dtype mismatch, " << dtype_name(a.dtype()) << " vs " << dtype_name(b.dtype());
}

void check_same_device(const Tensor& a, const Tensor& b, std::string_view op) {
  RUCHE_REQUIRE(a.device() == b.device())
      << op << ": device mismatch, " << a.device().str() << " vs " << b.device().str();
}

}  // namespace ruche
