#!/usr/bin/env bash
# make gpu-bundle: packs a CUDA build for a GPU machine that has a driver, Python with PyTorch's
# pip packages (cuDNN, cuBLAS, NCCL as shared libraries), and nothing else of ours.
#
#   tools/scripts/gpu_bundle.sh BUILD [--previous OLD_BUNDLE]   (BUILD: with the CUDA backend)
#
# Writes dist/ruche-gpu-bundle.tar.xz, one directory bundle/ inside:
#   bundle/bin/       ruche, the executables of the gpu-labelled tests (RPATH $ORIGIN/../lib; the
#                     CPU suites stay here: each links the whole engine, ~10 MiB apiece), Open
#                     MPI's launchers;
#                     with --previous (make gpu-bundle PREVIOUS=OLD_BUNDLE), ruche-previous: the
#                     ruche of an earlier bundle, for the GPU check's throughput step to measure
#                     against (tools/scripts/gpu_bundle_previous.sh; ~1 MiB more, xz next to ruche)
#   bundle/lib/       the non-CUDA shared libraries they load (ldd), Open MPI's plugins
#   bundle/lib/fallback/  this Debian's libstdc++/libgcc_s, used only where they load (glibc >= 2.36)
#   bundle/src/       what tests read from the source tree (reference scripts, examples)
#   bundle/tests.json ctest's test list (commands, labels, environment, fixtures)
#   bundle/env.sh     source it (tools/scripts/bundle_env.sh): sets LD_LIBRARY_PATH (bundle, then
#                     cuDNN 9/cuBLAS 13/NCCL 2 from the system, what it lacks from Python's nvidia
#                     packages, then /usr/local/cuda) and the RUCHE_* variables
#   bundle/MANIFEST   what is inside, where from (with --previous, a "previous:" line: the old
#                     bundle's commit and its ruche's --version)
# glibc's own libraries and the CUDA libraries (cudart is static; cuDNN, cuBLAS, NCCL come from
# the GPU machine) are left out.
set -euo pipefail

usage="usage: gpu_bundle.sh BUILD [--previous OLD_BUNDLE]"
build=${1:?$usage}
previous=""
case "${2:-}" in
  "") ;;
  --previous) previous=${3:?$usage} ;;
  *) echo "gpu-bundle: error: $usage" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
limit_mib=${RUCHE_BUNDLE_LIMIT_MIB:-28}
out_dir="$root/dist"
archive="$out_dir/ruche-gpu-bundle.tar.xz"

die() { echo "gpu-bundle: error: $*" >&2; exit 1; }
if [ -n "$previous" ]; then  # read before dist/'s archive is replaced, which it may be
  [ -f "$previous" ] \
    || die "PREVIOUS=$previous: no such file (an older dist/ruche-gpu-bundle.tar.xz)"
  previous=$(cd "$(dirname "$previous")" && pwd)/$(basename "$previous")
fi

[ -f "$build/CMakeCache.txt" ] || die "$build is not a CMake build directory (run make build)"
grep -q "RUCHE_WITH_CUDA=1" "$build/build.ninja" 2>/dev/null \
  || die "$build was configured without the CUDA backend; reconfigure with" \
         "cmake -S . -B $build -DRUCHE_CUDA=ON (needs nvcc) and rebuild"
[ -x "$build/ruche" ] || die "$build/ruche is missing (run make build)"
if "$build/ruche" devices 2>&1 | grep -q "built without CUDA"; then
  die "$build/ruche was built without CUDA"
fi
for tool in ldd patchelf xz python3 ctest; do
  command -v "$tool" >/dev/null || die "$tool not found (make deps installs patchelf)"
done

stage=$(mktemp -d "${TMPDIR:-/tmp}/ruche-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
b="$stage/bundle"
mkdir -p "$b/bin" "$b/lib/fallback" "$b/src"

# ---- executables: ruche and the gpu-labelled tests' ----
ctest --test-dir "$build" --show-only=json-v1 >"$b/tests.json"
# The test executables are the commands of gpu-labelled tests that live in the build tree (the
# python scripts' interpreter is the GPU machine's own).
list_tests() {  # list_tests exes|missing
  python3 - "$b/tests.json" "$build" "$1" <<'EOF'
import json, os, sys
tests, build, what = json.load(open(sys.argv[1]))["tests"], sys.argv[2], sys.argv[3]
seen = set()
def labels(t):
    return [l for p in t.get("properties", []) if p["name"] == "LABELS" for l in p["value"]]
for t in tests:
    cmd = t.get("command") or []
    if not cmd or not cmd[0].startswith(build + "/") or "gpu" not in labels(t):
        continue
    if what == "missing" and not os.access(cmd[0], os.X_OK):
        print(t["name"])
    elif what == "exes" and cmd[0] not in seen and os.access(cmd[0], os.X_OK):
        seen.add(cmd[0])
        print(cmd[0])
EOF
}
mapfile -t test_exes < <(list_tests exes)
missing=$(list_tests missing)
[ -z "$missing" ] || die "test executables not built: $(echo $missing) (run make build)"
exes=("$build/ruche" "${test_exes[@]}")
for exe in "${exes[@]}"; do install -m 755 "$exe" "$b/bin/"; done
echo "gpu-bundle: $(ls "$b/bin" | wc -l) executables"

# ---- shared libraries ----
# Left out: what the GPU machine must bring itself (glibc's, CUDA's).
source "$root/tools/scripts/machine_libs.sh"
declare -A copied=()
copy_deps() {  # every library `ldd FILE` resolves, into bundle/lib (or lib/fallback)
  local line name path
  while IFS= read -r line; do
    if [[ $line =~ ^[[:space:]]*([^[:space:]]+)[[:space:]]=\>[[:space:]](/[^[:space:]]+) ]]; then
      name=${BASH_REMATCH[1]}
      path=${BASH_REMATCH[2]}
    elif [[ $line =~ ^[[:space:]]*([^[:space:]]+)[[:space:]]=\>[[:space:]]not[[:space:]]found ]]; then
      machine_lib "${BASH_REMATCH[1]}" || die "$1 needs ${BASH_REMATCH[1]}, which ldd cannot find"
      continue
    else
      continue
    fi
    machine_lib "$name" && continue
    [ -n "${copied[$name]:-}" ] && continue
    copied[$name]=$path
    case "$name" in
      libstdc++.so*|libgcc_s.so*) install -m 644 "$(readlink -f "$path")" "$b/lib/fallback/$name" ;;
      *) install -m 644 "$(readlink -f "$path")" "$b/lib/$name" ;;
    esac
  done < <(ldd "$1" 2>/dev/null || true)
}
for exe in "$b"/bin/*; do copy_deps "$exe"; done

# Open MPI, when linked: its launchers, its plugins (dlopened, so ldd cannot see them), PMIx's
# plugins, help texts and default parameters. env.sh points OPAL_*/PMIX_* at them.
if [ -n "${copied[libmpi.so.40]:-}" ]; then
  ompi_lib=$(dirname "$(readlink -f "${copied[libmpi.so.40]}")")
  # Debian keeps them in $ompi_lib/openmpi/lib/openmpi3; other builds beside libmpi.
  plugins=""
  for dir in "$ompi_lib/openmpi3" "$ompi_lib/openmpi/lib/openmpi3"; do
    [ -f "$dir/mca_btl_tcp.so" ] && { plugins=$dir; break; }
  done
  [ -n "$plugins" ] || die "Open MPI's plugins (mca_*.so) not found beside $ompi_lib"
  cp -a "$plugins" "$b/lib/openmpi3"
  for plugin in "$b"/lib/openmpi3/*.so; do copy_deps "$plugin"; done
  pmix_plugins=$(ls -d /usr/lib/x86_64-linux-gnu/pmix2/lib/pmix 2>/dev/null || true)
  if [ -n "$pmix_plugins" ]; then
    cp -a "$pmix_plugins" "$b/lib/pmix"
    for plugin in "$b"/lib/pmix/*.so; do copy_deps "$plugin"; done
  fi
  for tool in orterun orted ompi_info; do
    src=$(command -v "$tool" || true)
    [ -n "$src" ] || continue
    install -m 755 "$(readlink -f "$src")" "$b/bin/$tool"
    copy_deps "$b/bin/$tool"
  done
  [ -f "$b/bin/orterun" ] && ln -sf orterun "$b/bin/mpirun"
  mkdir -p "$b/share" "$b/etc"
  [ -d /usr/share/openmpi ] && cp -a /usr/share/openmpi "$b/share/openmpi"
  [ -d /usr/share/pmix ] && cp -a /usr/share/pmix "$b/share/pmix"
  [ -d /etc/openmpi ] && cp -aL /etc/openmpi "$b/etc/openmpi"
fi
echo "gpu-bundle: ${#copied[@]} shared libraries"

# Loaded from the bundle first, whatever LD_LIBRARY_PATH says after it.
for exe in "$b"/bin/*; do
  [ -L "$exe" ] && continue
  file_type=$(head -c 4 "$exe" | od -An -c | tr -d ' ')
  [ "$file_type" = "177ELF" ] || continue
  patchelf --set-rpath '$ORIGIN/../lib' "$exe"
done
for lib in "$b"/lib/*.so*; do patchelf --set-rpath '$ORIGIN' "$lib" 2>/dev/null || true; done
# Symbol tables stay (readable backtraces); debug sections go.
strip --strip-debug "$b"/bin/* "$b"/lib/*.so* 2>/dev/null || true

# ---- the previous ruche (PREVIOUS=OLD_BUNDLE): bin/ruche-previous, lib/previous if need be ----
previous_line=""
if [ -n "$previous" ]; then
  previous_line=$(bash "$root/tools/scripts/gpu_bundle_previous.sh" "$b" "$previous")
  this_commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  case "$previous_line" in
    *"(commit $this_commit,"*)
      echo "gpu-bundle: warning: the previous ruche is of this same commit ($this_commit):" \
           "the ratio will compare a build with itself (or uncommitted changes)" >&2 ;;
  esac
fi

# ---- what the tests read from the source tree ----
(cd "$root" && find tests examples benchmarks -type f \
    ! -name '*.cc' ! -name '*.h' ! -name '*.cu' ! -name 'CMakeLists.txt' \
    ! -path '*/__pycache__/*' ! -path 'benchmarks/results/*' 2>/dev/null \
  | tar -cf - -T - ) | tar -xf - -C "$b/src"


# ---- env.sh: the library lookup lives in tools/scripts/bundle_env.sh (tested on its own) ----
install -m 644 "$root/tools/scripts/bundle_env.sh" "$b/env.sh"

# ---- manifest ----
{
  echo "ruche GPU bundle, built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  [ -z "$previous_line" ] || echo "$previous_line"
  echo "glibc $(getconf GNU_LIBC_VERSION | cut -d' ' -f2) (the machine needs at least the highest GLIBC_ below)"
  echo "highest symbol versions needed:"
  for f in "$b"/bin/* "$b"/lib/*.so* "$b"/lib/fallback/* "$b"/lib/previous/*; do
    [ -L "$f" ] && continue
    objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*' || true
  done | sort -uV | tail -1 | sed 's/^/  /'
  echo "CUDA libraries expected from the machine:"
  ldd "$b/bin/ruche" | awk '/cudnn|cublas|nccl/ {print "  " $1}'
  echo "executables:"
  (cd "$b/bin" && ls | sed 's/^/  /')
  echo "libraries (from):"
  for name in $(printf '%s\n' "${!copied[@]}" | sort); do echo "  $name <- ${copied[$name]}"; done
} >"$b/MANIFEST"

# ---- pack ----
mkdir -p "$out_dir"
rm -f "$archive"
raw=$(du -sm "$b" | cut -f1)
# Sorted: bin/ruche-previous lies next to bin/ruche in xz's window and costs ~0.9 MiB, not 1.7.
tar -C "$stage" --sort=name --owner=0 --group=0 -cf - bundle | xz -9e -T"$(nproc)" >"$archive.tmp"
mv "$archive.tmp" "$archive"
size=$(stat -c %s "$archive")
size_mib=$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1048576}')
echo "gpu-bundle: $archive: $size_mib MiB (${raw} MiB unpacked)"
if [ "$size" -gt $((limit_mib * 1048576)) ]; then
  die "bundle is $size_mib MiB, over the ${limit_mib} MiB budget"
fi
