// A checkpoint's manifest.pb: the binary CheckpointManifest with its checks, then the structs the
// loader takes from it.
#include "engine/checkpoint/manifest.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(manifest) {
  namespace cm = ruche::checkpoint_manifest;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const ruche::proto::CheckpointManifest m = cm::parse_manifest(bytes, "ckpt/manifest.pb");
  cm::meta_of(m);
  for (const ruche::StateTensor& t : cm::tensors_of(m)) cm::shape_text(t.shape);
  cm::shards_of(m);
}
