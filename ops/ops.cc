// The dispatching functions of ops.h: check that the tensors share one device, pick that device's
// table, call its entry.
#include "ops/ops.h"

#include <array>
#include <bit>
#include <sstream>
#include <span>
#include <string_view>

#include "ops/op_table.h"

namespace ruche::ops {
namespace {

template <typename... T>
std::array<const Tensor*, sizeof...(T)> pointers_of(const T&... tensors) {
  return {&tensors...};
}

const OpTable& table_for(const char* op, std::span<const Tensor* const> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    if (!first) {
      first = t;
    } else {
      RUCHE_REQUIRE(t->device() == first->device())
          << op << ": tensors on different devices (" << first->device().str() << " and "
          << t->device().str() << ")";
    }
  }
  RUCHE_REQUIRE(first != nullptr) << op << ": no tensor given";
  if (first->device().is_cpu()) return cpu_op_table();
  const OpTable* cuda = cuda_op_table();
  RUCHE_REQUIRE(cuda != nullptr) << op << ": tensor on " << first->device().str()
                                 << " but ruche was built without CUDA";
  return *cuda;
}

enum class LayoutRule { plain, one_layout, any };

#define RUCHE_OP_NAME(name) #name,
constexpr std::string_view kElementwise[] = {RUCHE_OPS_ELEMENTWISE(RUCHE_OP_NAME)};
constexpr std::string_view kTakingBlocked[] = {RUCHE_OPS_TAKING_BLOCKED(RUCHE_OP_NAME)};
#undef RUCHE_OP_NAME

consteval LayoutRule layout_rule_of(std::string_view op) {
  for (std::string_view name : kTakingBlocked) {
    if (name == op) return LayoutRule::any;
  }
  for (std::string_view name : kElementwise) {
    if (name == op) return LayoutRule::one_layout;
  }
  return LayoutRule::plain;
}

void check_layouts(const char* op, LayoutRule rule, std::span<const Tensor* const> tensors) {
  if (rule == LayoutRule::any) return;
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    if (!first) first = t;
    RUCHE_CHECK(rule == LayoutRule::one_layout ? t->layout() == first->layout() : t->is_plain())
        << op << ": got " << t->str()
        << (rule == LayoutRule::plain ? "; it takes plain tensors" : " beside " + first->str())
        << " (the net's layout plan must reorder its input)";
  }
}

GpuMath& math_setting() {
  static GpuMath math;
  return math;
}

}  // namespace

Precision parse_precision(const std::string& text) {
  for (Precision p : {Precision::fp32, Precision::tf32, Precision::bf16, Precision::fp16}) {
    if (text == precision_name(p)) return p;
  }
  RUCHE_FAIL() << "unknown precision '" << text << "' (fp32, tf32, bf16, fp16)";
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32:
      return "fp32";
    case Precision::tf32:
      return "tf32";
    case Precision::bf16:
      return "bf16";
    case Precision::fp16:
      return "fp16";
  }
  return "?";
}

std::int64_t check_optimizer_update(const OptimizerStep& step, const Tensor& params,
                                    const Tensor& grads, const Tensor& slot0, const Tensor& slot1) {
  constexpr const char* op = "optimizer_update";
  RUCHE_REQUIRE(step.steps.size() == step.ranges.size())
      << op << ": " << step.steps.size() << " range steps for " << step.ranges.size() << " ranges";
  std::int64_t end = 0;
  for (std::size_t r = 0; r < step.ranges.size(); ++r) {
    const UpdateRange& range = step.ranges[r];
    RUCHE_REQUIRE(range.begin >= end && range.end >= range.begin)
        << op << ": range " << r << " [" << range.begin << ", " << range.end
        << ") is reversed or starts before the previous range's end " << end;
    end = range.end;
  }
  const auto check_buffer = [&](const char* name, const Tensor& t) {
    RUCHE_REQUIRE(t.defined()) << op << ": " << name << " is not given";
    RUCHE_REQUIRE(t.dtype() == DType::f32) << op << ": " << name << " must be f32, got " << t.str();
    RUCHE_REQUIRE(t.is_contiguous())
        << op << ": " << name << " " << t.str() << " is not contiguous";
    RUCHE_REQUIRE(t.numel() >= end)
        << op << ": " << name << " holds " << t.numel() << " elements but the ranges reach " << end;
  };
  check_buffer("params", params);
  check_buffer("grads", grads);
  if (uses_slot0(step.kind, step.hyper)) check_buffer("slot0", slot0);
  if (uses_slot1(step.kind, step.hyper)) check_buffer("slot1", slot1);
  return end;
}

std::string bad_label_message(std::string_view op, std::int64_t code, std::int64_t classes) {
  const std::int64_t row = code >> 32;
  const auto label = static_cast<std::int32_t>(static_cast<std::uint32_t>(code & 0xFFFFFFFF));
  std::ostringstream out;
  out << op << ": label " << label << " at index " << row << " is out of range for " << classes
      << " classes";
  return out.str();
}

SumSquaresFinite SumSquaresFinite::of(const Tensor& host_out) {
  RUCHE_CHECK(host_out.device().is_cpu() && host_out.dtype() == DType::i64 &&
              host_out.numel() == 2 && host_out.is_contiguous())
      << "SumSquaresFinite::of: expected sum_squares_finite's out on the host, got "
      << host_out.str();
  const std::int64_t* bits = host_out.data<std::int64_t>();
  return {std::bit_cast<double>(bits[0]), std::bit_cast<double>(bits[1]) == 0.0};
}

SumSquaresFinite SumSquaresFinite::now(const Tensor& x, std::int64_t count) {
  Tensor out = Tensor::empty(Shape{2}, DType::i64, x.device());
  sum_squares_finite(x, count, out);
  return of(out.to(Device::cpu()));
}

Layout planned_layout(const Device& device, DType compute) {
  if (device.is_cpu()) {
    return compute == DType::f32 && !cpu_reference_path() ? cpu_blocked_layout() : Layout::plain;
  }
  return compute == DType::bf16 || compute == DType::f16 ? Layout::nhwc : Layout::plain;
}

bool takes_blocked(std::string_view op) {
  for (std::string_view name : kTakingBlocked) {
    if (name == op) return true;
  }
  for (std::string_view name : kElementwise) {
    if (name == op) return true;
  }
  return false;
}

void set_gpu_math(const GpuMath& math) { math_setting() = math; }
const GpuMath& gpu_math() { return math_setting(); }

#define RUCHE_OP_DISPATCH(name, params, args, tensors)                                    \
  void name params {                                                                      \
    const auto tensors_of_call = pointers_of tensors;                                     \
    check_layouts(#name, layout_rule_of(#name), tensors_of_call);                         \
    const OpTable& table = table_for(#name, tensors_of_call);                             \
    RUCHE_REQUIRE(table.name != nullptr)                                                  \
        << #name ": not implemented on " << (&table == &cpu_op_table() ? "cpu" : "cuda"); \
    table.name args;                                                                      \
  }
RUCHE_OPS(RUCHE_OP_DISPATCH)
#undef RUCHE_OP_DISPATCH

}  // namespace ruche::ops
