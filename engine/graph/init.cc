#include "engine/graph/init.h"

#include <cmath>

#include "engine/rng/fill.h"

namespace ruche {
namespace {

float fan(const ParamDecl& d) {
  const std::int64_t f = d.filler.mode() == "fan_out" ? d.fan_out : d.fan_in;
  RUCHE_REQUIRE(f > 0) << "parameter '" << d.suffix << "': filler " << d.filler.type()
                       << " needs a fan, which this layer does not declare";
  return static_cast<float>(f);
}

// Caffe's n for xavier and msra: its fans come from the blob's shape, not the layer's.
float caffe_fan(const Tensor& t, const ParamDecl& d) {
  const Shape& s = t.shape();
  RUCHE_REQUIRE(s.ndim() >= 1 && t.numel() > 0)
      << "parameter '" << d.suffix << "': filler " << d.filler.type() << " needs a shaped blob";
  // NOLINTNEXTLINE(bugprone-integer-division): exact, numel() is the product of the dims
  const auto fan_in = static_cast<float>(t.numel() / s[0]);
  const auto fan_out = static_cast<float>(s.ndim() > 1 ? t.numel() / s[1] : t.numel());
  const std::string& mode = d.filler.mode();
  if (mode == "fan_in") return fan_in;
  if (mode == "fan_out") return fan_out;
  RUCHE_REQUIRE(mode == "average") << "parameter '" << d.suffix << "': filler " << d.filler.type()
                                   << " mode '" << mode << "' (fan_in, fan_out or average)";
  return (fan_in + fan_out) / 2.0f;
}

}  // namespace

void fill_param(Tensor& t, const ParamDecl& d, const RngStream& stream) {
  const std::string& type = d.filler.type();
  if (type == "default") {
    switch (d.role) {
      case ParamRole::weight:
      case ParamRole::bias: {
        const float bound = 1.0f / std::sqrt(fan(d));
        fill_uniform(t, -bound, bound, stream);
        return;
      }
      case ParamRole::norm_weight:
        t.fill(1.0f);
        return;
      case ParamRole::norm_bias:
        t.fill(0.0f);
        return;
      case ParamRole::buffer:
        t.fill(d.filler.value());
        return;
    }
  }
  if (type == "constant") {
    t.fill(d.filler.value());
  } else if (type == "uniform") {
    fill_uniform(t, d.filler.min(), d.filler.max(), stream);
  } else if (type == "normal") {
    fill_normal(t, d.filler.mean(), d.filler.std(), stream);
  } else if (type == "kaiming_uniform") {
    // torch.nn.init.kaiming_uniform_(nonlinearity='relu'): gain sqrt(2), bound gain*sqrt(3/fan).
    const float bound = std::sqrt(2.0f) * std::sqrt(3.0f / fan(d));
    fill_uniform(t, -bound, bound, stream);
  } else if (type == "kaiming_normal") {
    fill_normal(t, 0.0f, std::sqrt(2.0f) / std::sqrt(fan(d)), stream);
  } else if (type == "xavier_uniform" || type == "xavier_normal") {
    RUCHE_REQUIRE(d.fan_in > 0 && d.fan_out > 0)
        << "parameter '" << d.suffix << "': " << type << " needs fan_in and fan_out";
    const float sum = static_cast<float>(d.fan_in + d.fan_out);
    if (type == "xavier_uniform") {
      const float bound = d.filler.gain() * std::sqrt(6.0f / sum);
      fill_uniform(t, -bound, bound, stream);
    } else {
      fill_normal(t, 0.0f, d.filler.gain() * std::sqrt(2.0f / sum), stream);
    }
  } else if (type == "xavier") {
    const float bound = std::sqrt(3.0f / caffe_fan(t, d));
    fill_uniform(t, -bound, bound, stream);
  } else if (type == "msra") {
    fill_normal(t, 0.0f, std::sqrt(2.0f / caffe_fan(t, d)), stream);
  } else {
    RUCHE_FAIL() << "unknown filler type '" << type
                 << "' (known: default, constant, uniform, normal, kaiming_uniform, "
                    "kaiming_normal, xavier_uniform, xavier_normal, xavier, msra)";
  }
}

}  // namespace ruche
