#!/usr/bin/env bash
# make format: clang-format (.clang-format) rewrites every C++ and CUDA file git tracks.
# make format-check (--check): changes nothing; lists the files clang-format would change and exits
# 1 when there are any, 77 when clang-format 14 is not installed (make deps installs Debian 12's;
# other versions break lines differently, so the check skips them; CLANG_FORMAT picks a binary).
set -euo pipefail
cd "$(dirname "$0")/../.."
clang_format=${CLANG_FORMAT:-clang-format}
if ! command -v "$clang_format" >/dev/null; then
  echo "format: $clang_format not found (make deps installs it)" >&2
  exit 77
fi
version=$("$clang_format" --version | grep -o 'version [0-9]*' | grep -o '[0-9]*$')
if [[ $version != 14 ]]; then
  echo "format: $clang_format is version $version; the tree is formatted by clang-format 14" >&2
  exit 77
fi
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cu' '*.cuh')

if [[ ${1:-} != --check ]]; then
  printf '%s\0' "${files[@]}" | xargs -0 -n 32 -P "$(nproc)" "$clang_format" -i
  exit 0
fi
unformatted=()
for f in "${files[@]}"; do
  "$clang_format" --dry-run "$f" 2>&1 | grep -q . && unformatted+=("$f")
done
if ((${#unformatted[@]})); then
  printf '%s\n' "${unformatted[@]}"
  echo "format: ${#unformatted[@]} of ${#files[@]} files are not formatted (make format)" >&2
  exit 1
fi
echo "format: ${#files[@]} files formatted"
