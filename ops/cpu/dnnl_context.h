// The oneDNN engine and stream every CPU op runs on, and memory descriptors for our tensors.
// Only ops/cpu includes oneDNN.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <unordered_map>

#include "engine/tensor/tensor.h"
#include "ops/ops.h"  // cpu_reference_path(): the plain NCHW code instead of the fast path

namespace ruche::ops::cpu {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

// A plain (row-major) f32 descriptor for t's shape: nchw for 4-d, nc for 2-d, x for 1-d.
dnnl::memory::desc plain_desc(const Tensor& t);
dnnl::memory::desc plain_desc(const Shape& shape);
// A oneDNN memory object over t's storage (no copy).
dnnl::memory as_memory(const Tensor& t);
dnnl::memory as_memory(const Tensor& t, const dnnl::memory::desc& desc);

// ---- cached primitives: built once per shape, then run without allocating on our side ----

// A oneDNN primitive with its own scratchpad (user scratchpad mode), so running it needs no
// scratchpad allocation. Build it from a primitive_desc made with cached_attr().
class Primitive {
 public:
  Primitive() = default;
  template <typename PrimitiveDesc>
  explicit Primitive(const PrimitiveDesc& pd) : primitive_(pd.get()) {
    if (pd.scratchpad_desc().get_size() > 0) {
      scratchpad_ = dnnl::memory(pd.scratchpad_desc(), dnnl_engine());
    }
  }
  // Runs on the shared stream; args are {DNNL_ARG_*, memory.get()}. Unlike
  // dnnl::primitive::execute, this builds no std::unordered_map of arguments.
  void run(std::initializer_list<dnnl_exec_arg_t> args) const {
    run(std::span<const dnnl_exec_arg_t>(args.begin(), args.size()));
  }
  void run(std::span<const dnnl_exec_arg_t> args) const;

 private:
  dnnl::primitive primitive_;
  dnnl::memory scratchpad_;
};

// Whether a oneDNN primitive is executing (on any thread: its OpenMP workers included). oneDNN
// 2.6 allocates there (its argument map, per-thread bookkeeping) whatever the caller does; the
// allocation test tells that apart from allocations in ruche's code.
bool inside_onednn();

// Attributes for every cached primitive: user scratchpad mode.
dnnl::primitive_attr cached_attr();

// One tensor argument of a primitive that may want its own (blocked) layout: a memory object over
// the caller's plain tensor and the one the primitive reads or writes. When the layouts differ,
// the bridge owns a buffer in the primitive's layout and the reorder between the two.
class LayoutBridge {
 public:
  LayoutBridge() = default;
  LayoutBridge(const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted, bool is_output);
  // Points the bridge at the caller's data; an input is reordered into inner() here.
  const dnnl::memory& input(void* data) const;
  // Points the bridge at the caller's data; call written() after the primitive ran.
  const dnnl::memory& output(void* data) const;
  void written() const;  // reorders an output back into the caller's plain layout

 private:
  dnnl::memory user_, inner_;
  Primitive reorder_;
  bool reordered_ = false;
};

// Cache keys: shapes and parameters packed into a fixed array, so a lookup never allocates.
template <std::size_t N>
using CacheKey = std::array<std::int64_t, N>;

struct CacheKeyHash {
  template <std::size_t N>
  std::size_t operator()(const CacheKey<N>& key) const {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the integers
    for (std::int64_t v : key) h = (h ^ static_cast<std::uint64_t>(v)) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

// Declare caches thread_local: an entry's memory objects are rebound to the caller's tensors on
// every call, so two threads must not share one.
template <std::size_t N, typename Entry>
using PrimitiveCache = std::unordered_map<CacheKey<N>, Entry, CacheKeyHash>;

// The entry for `key`, built by make() on the first call.
template <std::size_t N, typename Entry, typename Make>
const Entry& cached(PrimitiveCache<N, Entry>& cache, const CacheKey<N>& key, Make&& make) {
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make()).first;
  return it->second;
}

}  // namespace ruche::ops::cpu
