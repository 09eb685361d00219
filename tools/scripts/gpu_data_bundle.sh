#!/usr/bin/env bash
# make gpu-data (and make gpu-bundle, when it is missing): packs Fashion-MNIST for the GPU check's
# fashion step (benchmarks/gpu_check.sh); it travels to the GPU machine with the bundle.
#
#   tools/scripts/gpu_data_bundle.sh [DIR]   (DIR: default /usr/share/datasets/fashion-mnist,
#                                            Debian's dataset-fashion-mnist; make deps installs it)
#
# Writes dist/fashion-mnist.tar.xz holding fashion-mnist/ with the four idx files decompressed:
# xz -9 of the raw files is ~25 MiB against 29 MiB for Debian's .gz files (ruche reads both).
set -euo pipefail

src=${1:-/usr/share/datasets/fashion-mnist}
root=$(cd "$(dirname "$0")/../.." && pwd)
archive="$root/dist/fashion-mnist.tar.xz"
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

die() { echo "gpu-data: error: $*" >&2; exit 1; }
command -v xz >/dev/null || die "xz not found"

stage=$(mktemp -d "${TMPDIR:-/tmp}/ruche-gpu-data.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/fashion-mnist"
for f in $files; do
  if [ -f "$src/$f.gz" ]; then
    gzip -dc "$src/$f.gz" >"$stage/fashion-mnist/$f"
  elif [ -f "$src/$f" ]; then
    cp "$src/$f" "$stage/fashion-mnist/$f"
  else
    die "$src has no $f[.gz] (install Debian's dataset-fashion-mnist: make deps; or give DIR)"
  fi
done
mkdir -p "$root/dist"
tar -C "$stage" --owner=0 --group=0 -cf - fashion-mnist | xz -9 -T"$(nproc)" >"$archive.tmp"
mv "$archive.tmp" "$archive"
echo "gpu-data: $archive: $(awk -v s="$(stat -c %s "$archive")" 'BEGIN {printf "%.1f", s / 1048576}') MiB"
