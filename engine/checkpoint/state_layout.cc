// The logical state of a run (parameters, optimizer slots, buffers as one byte sequence), its
// shards' byte ranges and names, its hash, and copying a byte range of it to the host.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "engine/checkpoint/checkpoint.h"
#include "engine/error.h"

namespace ruche {
namespace {

// A region's tensor as one flat f32 vector (the flat buffers are contiguous already).
Tensor flat_f32(const Tensor& t, const std::string& name) {
  RUCHE_CHECK(t.dtype() == DType::f32) << "state region " << name << " is " << t.str();
  RUCHE_CHECK(t.is_contiguous()) << "state region " << name << " is not contiguous";
  return t.numel() == 0 ? t : t.view(Shape{t.numel()});
}

void add_region(StateLayout& layout, std::int64_t& offset, const std::string& name,
                const Tensor& tensor) {
  Tensor flat = flat_f32(tensor, name);
  layout.regions.push_back({name, flat});
  offset += static_cast<std::int64_t>(flat.nbytes());
}

void add_tensor(StateLayout& layout, std::string name, const Shape& shape, std::int64_t offset) {
  StateTensor t;
  t.name = std::move(name);
  t.shape = shape;
  t.offset = offset;
  t.bytes = shape.numel() * static_cast<std::int64_t>(sizeof(float));
  layout.tensors.push_back(std::move(t));
}

}  // namespace

std::int64_t StateLayout::total_bytes() const {
  std::int64_t total = 0;
  for (const auto& r : regions) total += r.bytes();
  return total;
}

StateLayout training_state_layout(Net& net, Optimizer& optimizer) {
  StateLayout layout;
  std::int64_t offset = 0;
  constexpr std::int64_t kF32 = sizeof(float);
  // Entries sorted by offset, so tensors follow the bytes even if a table were out of order.
  auto by_offset = [](std::vector<ParamEntry> table) {
    std::stable_sort(table.begin(), table.end(),
                     [](const ParamEntry& a, const ParamEntry& b) { return a.offset < b.offset; });
    return table;
  };
  const std::vector<ParamEntry> params = by_offset(net.param_table());
  const std::vector<ParamEntry> buffers = by_offset(net.buffer_table());

  const std::int64_t params_at = offset;
  add_region(layout, offset, "params", net.params());
  for (const auto& e : params) add_tensor(layout, e.name, e.shape, params_at + e.offset * kF32);

  RUCHE_CHECK(optimizer.whole() == net.num_trainable())
      << "the optimizer covers " << optimizer.whole() << " values, the net " << net.num_trainable()
      << " trainable";
  for (auto& [slot, tensor] : optimizer.slots()) {
    RUCHE_CHECK(tensor->numel() == optimizer.num_trainable())
        << "optimizer slot " << slot << " holds " << tensor->numel() << " values, the optimizer "
        << optimizer.num_trainable();
    const std::int64_t slot_at = offset;
    add_region(layout, offset, slot, *tensor);
    if (optimizer.num_trainable() != optimizer.whole()) {  // ZeRO-1: this rank's range of it
      StateRegion& region = layout.regions.back();
      region.numel = optimizer.whole();
      region.held_begin = optimizer.offset();
      offset = slot_at + region.bytes();
    }
    for (const auto& e : params) {
      if (e.frozen) continue;
      std::string name = slot;
      name.append(".").append(e.name);
      add_tensor(layout, std::move(name), e.shape, slot_at + e.offset * kF32);
    }
  }

  if (net.buffers().numel() > 0) {
    const std::int64_t buffers_at = offset;
    add_region(layout, offset, "buffers", net.buffers());
    for (const auto& e : buffers) add_tensor(layout, e.name, e.shape, buffers_at + e.offset * kF32);
  }
  return layout;
}

std::uint64_t state_hash(const std::vector<StateTensor>& tensors) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const void* data, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    for (std::size_t i = 0; i < size; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ull;
    }
  };
  for (const auto& t : tensors) {
    mix(t.name.data(), t.name.size() + 1);  // with the terminating NUL: "ab","c" != "a","bc"
    const std::string_view dtype = dtype_name(t.dtype);
    mix(dtype.data(), dtype.size());
    const std::int64_t ndim = t.shape.ndim();
    mix(&ndim, sizeof ndim);
    for (const std::int64_t d : t.shape) mix(&d, sizeof d);
  }
  return h;
}

ByteRange shard_range(std::int64_t total, int rank, int world) {
  RUCHE_CHECK(world > 0 && rank >= 0 && rank < world && total >= 0)
      << "shard_range(" << total << ", " << rank << ", " << world << ")";
  // total * rank may not fit 64 bits for huge states; do it in 128.
  const auto at = [&](int r) {
    return static_cast<std::int64_t>(static_cast<__int128>(total) * r / world);
  };
  return {at(rank), at(rank + 1)};
}

std::string checkpoint_dir_name(std::int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return name;
}

std::string shard_file_name(int rank, int world) {
  char name[48];
  std::snprintf(name, sizeof name, "shard-%05d-of-%05d.bin", rank, world);
  return name;
}

void snapshot(const StateLayout& layout, ByteRange range, std::vector<std::uint8_t>& out) {
  RUCHE_CHECK(range.begin >= 0 && range.begin <= range.end && range.end <= layout.total_bytes())
      << "snapshot of [" << range.begin << ", " << range.end << ") of a state of "
      << layout.total_bytes() << " bytes";
  out.resize(static_cast<std::size_t>(range.size()));
  std::int64_t region_begin = 0;
  for (const auto& region : layout.regions) {
    const std::int64_t region_end = region_begin + region.bytes();
    // The bytes this rank holds: all of the region, or its ZeRO-1 range of it.
    const std::int64_t held_begin =
        region_begin + region.held_begin * static_cast<std::int64_t>(sizeof(float));
    const std::int64_t held_end = held_begin + static_cast<std::int64_t>(region.tensor.nbytes());
    const std::int64_t begin = std::max(range.begin, held_begin);
    const std::int64_t end = std::min(range.end, held_end);
    if (begin < end) {
      std::uint8_t* dst = out.data() + (begin - range.begin);
      const std::int64_t local = begin - held_begin;  // bytes into the tensor
      if (region.tensor.device().is_cpu()) {
        std::memcpy(dst, static_cast<const std::uint8_t*>(region.tensor.raw_data()) + local,
                    static_cast<std::size_t>(end - begin));
      } else {
        // Whole elements covering the bytes, copied to the host, then the bytes out of them.
        constexpr std::int64_t kF32 = sizeof(float);
        const std::int64_t first = local / kF32;
        const std::int64_t last = (local + (end - begin) + kF32 - 1) / kF32;
        const Tensor host = region.tensor.narrow(0, first, last - first).to(Device::cpu());
        std::memcpy(dst, static_cast<const std::uint8_t*>(host.raw_data()) + (local - first * kF32),
                    static_cast<std::size_t>(end - begin));
      }
    }
    region_begin = region_end;
  }
}

}  // namespace ruche
