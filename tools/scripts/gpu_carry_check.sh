#!/usr/bin/env bash
# make gpu-bundle's last check: one call to a GPU machine carries dist/ (the bundle and
# Fashion-MNIST) and the working tree (tracked and untracked-not-ignored files) in at most
# 64 MiB; refuse above 60 MiB, so the results.json copied in for --rerun-failed still fits.
# A bundle made with PREVIOUS=OLD_BUNDLE is counted as it is (its bin/ruche-previous adds ~1 MiB);
# keep older bundles outside dist/, which is carried whole.
#
#   tools/scripts/gpu_carry_check.sh      (RUCHE_CARRY_LIMIT_MIB: another limit)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
limit_mib=${RUCHE_CARRY_LIMIT_MIB:-60}
cd "$root"
mib() { awk -v s="$1" 'BEGIN {printf "%.1f", s / 1048576}'; }

for f in dist/ruche-gpu-bundle.tar.xz dist/fashion-mnist.tar.xz; do
  [ -f "$f" ] || { echo "gpu-bundle: error: $f is missing (make gpu-bundle makes both)" >&2
                   exit 1; }
done
dist=$(du -sb dist | cut -f1)
tree=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 \
       | cut -f1)
total=$((dist + tree))
if [ "$total" -gt $((limit_mib * 1048576)) ]; then
  echo "gpu-bundle: error: the carry is $(mib "$total") MiB (dist/ $(mib "$dist"), working tree" \
       "$(mib "$tree")), over $limit_mib MiB: empty dist/ of other files (older bundles too)," \
       "pack without PREVIOUS, or shrink the tree" >&2
  exit 1
fi
echo "gpu-bundle: carry $(mib "$total") MiB of $limit_mib (dist/ $(mib "$dist"), working tree" \
     "$(mib "$tree")); on the GPU machine: bash benchmarks/gpu_check.sh OUT"
