#include "engine/data/npz_source.h"

#include <algorithm>
#include <map>

#include "engine/data/in_memory.h"
#include "engine/error.h"
#include "engine/tensor/npz.h"

namespace ruche {
namespace {

// Copies x's samples into d (float or byte), NHWC transposed to NCHW.
template <typename T>
void take_samples(const Tensor& x, DataLayout layout, std::vector<T>* out, Shape* sample_shape) {
  const T* p = x.data<T>();
  const std::int64_t n = x.size(0);
  Shape s;
  for (int i = 1; i < x.ndim(); ++i) s.push_back(x.size(i));
  if (s.ndim() == 2) s = Shape{1, s[0], s[1]};
  out->resize(static_cast<std::size_t>(x.numel()));
  if (x.ndim() == 4 && layout == DataLayout::nhwc) {
    const std::int64_t h = x.size(1), w = x.size(2), c = x.size(3);
    s = Shape{c, h, w};
    T* o = out->data();
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t xx = 0; xx < w; ++xx)
          for (std::int64_t ch = 0; ch < c; ++ch)
            o[((i * c + ch) * h + y) * w + xx] = p[((i * h + y) * w + xx) * c + ch];
  } else {
    std::copy(p, p + x.numel(), out->data());
  }
  *sample_shape = s;
}

std::vector<std::int32_t> take_labels(const Tensor& y, const std::string& where,
                                      std::optional<std::int32_t> ignore_label) {
  std::vector<std::int32_t> labels;
  switch (y.dtype()) {
    case DType::i32:
      labels = y.to_vector<std::int32_t>();
      break;
    case DType::u8:
      for (std::uint8_t v : y.to_vector<std::uint8_t>()) labels.push_back(v);
      break;
    case DType::i64:
      for (std::int64_t v : y.to_vector<std::int64_t>()) {
        RUCHE_REQUIRE((v >= 0 && v < (1 << 30)) || v == ignore_label)
            << where << ": label " << v << " out of range";
        labels.push_back(static_cast<std::int32_t>(v));
      }
      break;
    default:
      RUCHE_FAIL() << where << ": y is " << dtype_name(y.dtype()) << ", expected integer labels";
  }
  return labels;
}

bool is_float(DType t) { return t == DType::f32; }

// A float y is a regression target per sample: [N] gives [1], [N, ...] its trailing shape (NHWC
// [N, H, W, C] transposed to [C, H, W], as x); the class labels are all 0.
void take_targets(const Tensor& y, DataLayout layout, InMemoryData* d) {
  const Tensor& f = y;
  if (y.ndim() == 1) {
    d->targets = f.to_vector<float>();
    d->target_shape = Shape{1};
  } else {
    Shape ignored;
    take_samples<float>(f, layout, &d->targets, &ignored);
    d->target_shape = Shape{};
    for (int i = 1; i < y.ndim(); ++i) d->target_shape.push_back(y.size(i));
    if (y.ndim() == 4 && layout == DataLayout::nhwc) d->target_shape = ignored;
  }
  d->labels.assign(static_cast<std::size_t>(y.size(0)), 0);
}

InMemoryData make_split(const std::map<std::string, Tensor>& arrays, const std::string& xname,
                        const std::string& yname, DataLayout layout, const std::string& path,
                        std::optional<std::int32_t> ignore_label) {
  const Tensor& x = arrays.at(xname);
  const Tensor& y = arrays.at(yname);
  const std::string where = path + " (" + xname + ", " + yname + ")";
  RUCHE_REQUIRE(x.ndim() >= 2 && x.ndim() <= 4)
      << where << ": " << xname << " is " << x.shape().str()
      << ", expected [N, D], [N, H, W] or [N, C, H, W]";
  RUCHE_REQUIRE((y.ndim() == 1 || is_float(y.dtype())) && y.ndim() >= 1 && y.size(0) == x.size(0))
      << where << ": " << yname << " is " << y.shape().str() << ", expected [" << x.size(0)
      << "] (class labels) or float32 [" << x.size(0) << ", ...] (regression targets)";
  InMemoryData d;
  d.kind = "npz";
  if (x.dtype() == DType::f32) {
    take_samples<float>(x, layout, &d.f32, &d.sample_shape);
  } else if (x.dtype() == DType::u8) {
    take_samples<std::uint8_t>(x, layout, &d.u8, &d.sample_shape);
  } else {
    RUCHE_FAIL() << where << ": " << xname << " is " << dtype_name(x.dtype())
                 << ", expected float32 (or uint8)";
  }
  if (is_float(y.dtype())) {
    take_targets(y, layout, &d);
  } else {
    d.labels = take_labels(y, where, ignore_label);
    d.ignore_label = ignore_label;
  }
  return d;
}

}  // namespace

DataLayout parse_data_layout(const std::string& text) {
  if (text == "nchw") return DataLayout::nchw;
  if (text == "nhwc") return DataLayout::nhwc;
  RUCHE_FAIL() << "--data-layout " << text << ": expected nchw or nhwc";
}

DataSources load_npz_dataset(const std::string& path, DataLayout layout,
                             std::optional<std::int32_t> ignore_label) {
  const std::map<std::string, Tensor> arrays = load_npz(path);
  const auto has = [&](const char* name) { return arrays.count(name) > 0; };
  InMemoryData train, test;
  if (has("x") && has("y")) {
    train = make_split(arrays, "x", "y", layout, path, ignore_label);
  } else if (has("x_train") && has("y_train")) {
    train = make_split(arrays, "x_train", "y_train", layout, path, ignore_label);
    if (has("x_test") && has("y_test"))
      test = make_split(arrays, "x_test", "y_test", layout, path, ignore_label);
  } else {
    std::string names;
    for (const auto& [name, t] : arrays) names += (names.empty() ? "" : ", ") + name;
    RUCHE_FAIL() << path << ": expected arrays x (float32 [N, ...]) and y (int [N]), or "
                 << "x_train/y_train; found " << (names.empty() ? "none" : names);
  }
  // Both splits count the classes either one has.
  std::int32_t max_label = 0;
  for (const InMemoryData* d : {&train, &test})
    for (std::int32_t label : d->labels) {
      if (label != ignore_label) max_label = std::max(max_label, label);
    }
  train.num_classes = test.num_classes = max_label + 1;
  DataSources s;
  s.train = std::make_shared<InMemoryDataset>(std::move(train), path);
  if (!test.labels.empty()) {
    RUCHE_REQUIRE(test.sample_shape == s.train->sample_shape())
        << path << ": x_test samples are " << test.sample_shape.str() << ", x_train's "
        << s.train->sample_shape().str();
    RUCHE_REQUIRE(test.target_shape == s.train->target_shape())
        << path << ": y_test targets are " << test.target_shape.str() << ", y_train's "
        << s.train->target_shape().str() << " (float y: regression targets; int y: classes)";
    s.test = std::make_shared<InMemoryDataset>(std::move(test), path + " (x_test, y_test)");
  }
  return s;
}

}  // namespace ruche
