#include "comm/mpi/collective_info.h"

#include <algorithm>
#include <cstring>

#include "comm/communicator.h"

namespace ruche {

namespace {

const char* kind_name(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::all_reduce:
      return "all_reduce";
    case CollectiveKind::broadcast:
      return "broadcast";
    case CollectiveKind::all_gather:
      return "all_gather";
    case CollectiveKind::reduce_scatter:
      return "reduce_scatter";
    case CollectiveKind::barrier:
      return "barrier";
    case CollectiveKind::reduce_scatter_v:
      return "reduce_scatter_v";
    case CollectiveKind::all_gather_v:
      return "all_gather_v";
  }
  return "collective?";
}

const char* op_name(std::int32_t op) {
  switch (static_cast<ReduceOp>(op)) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::avg:
      return "avg";
  }
  return "op?";
}

std::string buffer_str(DType dtype, std::int64_t count) {
  std::string s(dtype_name(dtype));
  s.append("[").append(std::to_string(count)).append("]");
  return s;
}

// "all_reduce avg f32[1000] (gradient bucket 2 of 3)": the line's header gives the number.
std::string describe_unnumbered(const CollectiveInfo& c) {
  std::string s = c.op_str();
  if (!c.label.empty()) s.append(" (").append(c.label).append(")");
  return s;
}

}  // namespace

std::string CollectiveInfo::op_str() const {
  std::string s = kind_name(kind);
  switch (kind) {
    case CollectiveKind::all_reduce:
      s.append(" ").append(op_name(arg)).append(" ").append(buffer_str(dtype, count));
      break;
    case CollectiveKind::broadcast:
      s.append(" ").append(buffer_str(dtype, count)).append(" from rank ");
      s.append(std::to_string(arg));
      break;
    case CollectiveKind::all_gather:
      s.append(" ").append(buffer_str(dtype, count)).append(" per rank");
      break;
    case CollectiveKind::reduce_scatter:
      s.append(" ").append(op_name(arg)).append(" ").append(buffer_str(dtype, count));
      s.append(" per rank");
      break;
    case CollectiveKind::reduce_scatter_v:
      s.append(" ").append(op_name(arg)).append(" ").append(buffer_str(dtype, count));
      s.append(" in all");
      break;
    case CollectiveKind::all_gather_v:
      s.append(" ").append(buffer_str(dtype, count)).append(" in all");
      break;
    case CollectiveKind::barrier:
      break;
  }
  return s;
}

std::string CollectiveInfo::str() const {
  std::string s = op_str();
  s.append(" (");
  if (!label.empty()) s.append(label).append(", ");
  s.append("collective #").append(std::to_string(seq)).append(")");
  return s;
}

bool CollectiveInfo::same_collective(const CollectiveInfo& o) const {
  return seq == o.seq && kind == o.kind && dtype == o.dtype && count == o.count && arg == o.arg &&
         label == o.label;
}

CollectiveWire to_wire(const CollectiveInfo& info) {
  CollectiveWire w{};
  w.seq = info.seq;
  w.count = info.count;
  w.arg = info.arg;
  w.kind = static_cast<std::uint8_t>(info.kind);
  w.dtype = static_cast<std::uint8_t>(info.dtype);
  std::memcpy(w.label, info.label.data(), std::min(info.label.size(), sizeof w.label - 1));
  return w;
}

CollectiveInfo from_wire(const CollectiveWire& w) {
  CollectiveInfo info;
  info.seq = w.seq;
  info.count = w.count;
  info.arg = w.arg;
  info.kind = static_cast<CollectiveKind>(w.kind);
  info.dtype = static_cast<DType>(w.dtype);
  info.label.assign(w.label, strnlen(w.label, sizeof w.label));
  return info;
}

std::string mismatch_line(const std::vector<CollectiveInfo>& by_rank) {
  const bool same = std::all_of(by_rank.begin(), by_rank.end(), [&](const CollectiveInfo& c) {
    return c.same_collective(by_rank.front());
  });
  if (same) return {};
  // Ranks that issued the same thing share one entry: "ranks 0,2 all_reduce ..., rank 1 ...".
  std::vector<bool> told(by_rank.size(), false);
  std::string line = "ruche: collective #";
  line.append(std::to_string(by_rank.front().seq)).append(" differs across ranks: ");
  for (std::size_t r = 0; r < by_rank.size(); ++r) {
    if (told[r]) continue;
    std::vector<std::size_t> group;
    for (std::size_t q = r; q < by_rank.size(); ++q) {
      if (!told[q] && by_rank[q].same_collective(by_rank[r])) {
        told[q] = true;
        group.push_back(q);
      }
    }
    if (r > 0) line.append(", ");
    line.append(group.size() == 1 ? "rank " : "ranks ");
    for (std::size_t i = 0; i < group.size() && i < 8; ++i) {
      if (i > 0) line.append(",");
      line.append(std::to_string(group[i]));
    }
    if (group.size() > 8)
      line.append(" and ").append(std::to_string(group.size() - 8)).append(" more");
    const CollectiveInfo& c = by_rank[r];
    line.append(" ").append(c.seq == by_rank.front().seq ? describe_unnumbered(c) : c.str());
  }
  line.append("; aborting the job");
  return line;
}

}  // namespace ruche
