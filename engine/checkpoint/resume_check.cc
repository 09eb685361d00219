// Whether a resume can be bit-identical: the same world size and thread count as the checkpoint's.
#include "engine/checkpoint/checkpoint.h"

namespace ruche {

std::string resume_differences(const CheckpointMeta& meta, int world_size, int threads) {
  const bool same_world = meta.world_size == world_size;
  // A checkpoint that did not record its threads (0) cannot promise bits either.
  const bool same_threads = meta.threads == threads && threads > 0;
  if (same_world && same_threads) return "";
  auto setup = [](int ranks, int t) {
    std::string s = std::to_string(ranks);
    s.append(ranks == 1 ? " rank x " : " ranks x ");
    s.append(t > 0 ? std::to_string(t) : std::string("?")).append(t == 1 ? " thread" : " threads");
    return s;
  };
  std::string line = "the checkpoint was written by ";
  line.append(setup(meta.world_size, meta.threads))
      .append(", this run has ")
      .append(setup(world_size, threads))
      .append(": the resume continues at the same sample and step, but not bit-identically (");
  line.append(same_world ? "the thread count changes" : "the world size changes");
  line.append(" the order of floating-point sums)");
  return line;
}

}  // namespace ruche
