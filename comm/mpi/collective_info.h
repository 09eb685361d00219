// What a collective is: what the watchdog names, and what ranks compare before running it when
// CommOptions::check_collectives is on. MPI-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor/dtype.h"

namespace ruche {

enum class CollectiveKind : std::uint8_t {
  all_reduce,
  broadcast,
  all_gather,
  reduce_scatter,
  barrier,
  reduce_scatter_v,  // per-rank counts: count is the whole buffer
  all_gather_v
};

struct CollectiveInfo {
  std::uint64_t seq = 0;  // 1, 2, ... in submission order, per communicator
  CollectiveKind kind = CollectiveKind::barrier;
  DType dtype = DType::f32;
  std::int64_t count = 0;  // elements: the buffer; per rank for all_gather and reduce_scatter
                           // (the whole buffer for their _v forms)
  std::int32_t arg = 0;    // reductions: the ReduceOp; broadcast: the root
  std::string label;       // what it is for: the same on every rank, so compared too

  std::string op_str() const;  // "all_reduce sum f32[1000]", "broadcast f32[10] from rank 0"
  std::string str() const;     // op_str() + " (gradient bucket 2 of 3, collective #57)"
  // Compares everything. Ranks check in lockstep, so the sequence numbers always agree; the
  // label tells apart equal-sized buckets when a rank skipped one.
  bool same_collective(const CollectiveInfo& other) const;
};

// The fixed-size form ranks all-gather; the label is cut to fit.
struct CollectiveWire {
  std::uint64_t seq;
  std::int64_t count;
  std::int32_t arg;
  std::uint8_t kind, dtype;
  char label[106];  // NUL-terminated
};
static_assert(sizeof(CollectiveWire) == 128);

CollectiveWire to_wire(const CollectiveInfo& info);
CollectiveInfo from_wire(const CollectiveWire& wire);

// "" when every rank issued the same collective; otherwise the line that names the ranks and
// what each issued: "ruche: collective #57 differs across ranks: rank 0 all_reduce ..., rank 1
// broadcast ...; aborting the job".
std::string mismatch_line(const std::vector<CollectiveInfo>& by_rank);

}  // namespace ruche
