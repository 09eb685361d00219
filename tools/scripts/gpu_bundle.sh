#!/usr/bin/env bash
# make gpu-bundle: packs a CUDA build for a GPU machine that has a driver, Python with PyTorch's
# pip packages (cuDNN, cuBLAS, NCCL as shared libraries), and nothing else of ours.
#
#   tools/scripts/gpu_bundle.sh BUILD        (BUILD configured with the CUDA backend)
#
# Writes dist/ruche-gpu-bundle.tar.xz, one directory bundle/ inside:
#   bundle/bin/       ruche, every test executable (RPATH $ORIGIN/../lib), Open MPI's launchers
#   bundle/lib/       the non-CUDA shared libraries they load (ldd), Open MPI's plugins
#   bundle/lib/fallback/  this Debian's libstdc++/libgcc_s, used only where they load (glibc >= 2.36)
#   bundle/src/       what tests read from the source tree (reference scripts, examples)
#   bundle/tests.json ctest's test list (commands, labels, environment, fixtures)
#   bundle/env.sh     source it: sets LD_LIBRARY_PATH (bundle, then cuDNN/cuBLAS/NCCL from the
#                     system or from Python's nvidia packages) and the RUCHE_* variables
#   bundle/MANIFEST   what is inside, where from
# glibc's own libraries and the CUDA libraries (cudart is static; cuDNN, cuBLAS, NCCL come from
# the GPU machine) are left out.
set -euo pipefail

build=${1:?usage: gpu_bundle.sh BUILD}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
limit_mib=${RUCHE_BUNDLE_LIMIT_MIB:-28}
out_dir="$root/dist"
archive="$out_dir/ruche-gpu-bundle.tar.xz"

die() { echo "gpu-bundle: error: $*" >&2; exit 1; }

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

# ---- executables: ruche and every test executable ctest knows ----
ctest --test-dir "$build" --show-only=json-v1 >"$b/tests.json"
# The test executables are the commands ctest runs that live in the build tree (the reference
# fixture's python is the GPU machine's own).
list_tests() {  # list_tests exes|missing
  python3 - "$b/tests.json" "$build" "$1" <<'EOF'
import json, os, sys
tests, build, what = json.load(open(sys.argv[1]))["tests"], sys.argv[2], sys.argv[3]
seen = set()
for t in tests:
    cmd = t.get("command") or []
    if not cmd or not cmd[0].startswith(build + "/"):
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
# Left out: glibc's own (the machine's must be used) and CUDA's (the GPU machine brings them).
skip_lib() {
  case "$1" in
    linux-vdso.so*|ld-linux*|libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libutil.so*|\
    libresolv.so*|libnsl.so*|libanl.so*|libmvec.so*|libBrokenLocale.so*) return 0 ;;
    libcuda.so*|libcudart.so*|libcudnn*|libcublas*|libnccl*|libnvrtc*|libnvJitLink*|libcufft*|\
    libcurand*|libcusparse*|libcusolver*|libnvidia-*) return 0 ;;
  esac
  return 1
}
declare -A copied=()
copy_deps() {  # every library `ldd FILE` resolves, into bundle/lib (or lib/fallback)
  local line name path
  while IFS= read -r line; do
    if [[ $line =~ ^[[:space:]]*([^[:space:]]+)[[:space:]]=\>[[:space:]](/[^[:space:]]+) ]]; then
      name=${BASH_REMATCH[1]}
      path=${BASH_REMATCH[2]}
    elif [[ $line =~ ^[[:space:]]*([^[:space:]]+)[[:space:]]=\>[[:space:]]not[[:space:]]found ]]; then
      skip_lib "${BASH_REMATCH[1]}" || die "$1 needs ${BASH_REMATCH[1]}, which ldd cannot find"
      continue
    else
      continue
    fi
    skip_lib "$name" && continue
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
  plugins="$ompi_lib/openmpi3"
  [ -d "$plugins" ] || plugins=$(ls -d "$ompi_lib"/openmpi* 2>/dev/null | head -1)
  [ -d "$plugins" ] || die "Open MPI plugin directory not found beside $ompi_lib"
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

# ---- what the tests read from the source tree ----
(cd "$root" && find tests examples benchmarks -type f \
    ! -name '*.cc' ! -name '*.h' ! -name '*.cu' ! -name 'CMakeLists.txt' \
    ! -path '*/__pycache__/*' ! -path 'benchmarks/results/*' 2>/dev/null \
  | tar -cf - -T - ) | tar -xf - -C "$b/src"

# Where the tests' paths pointed on this machine, for benchmarks/gpu_check.py to map them.
printf '{"build_dir": "%s", "source_dir": "%s"}\n' "$build" "$root" >"$b/paths.json"

# ---- env.sh ----
cat >"$b/env.sh" <<'EOF'
# Source me (bash): . bundle/env.sh   Sets LD_LIBRARY_PATH so the bundle's binaries run here:
# the bundle's libraries first, then cuDNN/cuBLAS/NCCL from the system (ldconfig), or else from
# Python's nvidia pip packages (PyTorch's), or else /usr/local/cuda. Also RUCHE_SOURCE_DIR,
# RUCHE_BINARY and Open MPI's install directories. Prints what it chose with RUCHE_ENV_VERBOSE=1.
RUCHE_BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export RUCHE_BUNDLE

ruche_cuda_dirs=""
# RUCHE_IGNORE_SYSTEM_CUDA=1 skips the system's copies (to test the pip-package path).
if [ "${RUCHE_IGNORE_SYSTEM_CUDA:-0}" = 1 ] || ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libcudnn\.so\.9 ' \
   || ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libcublas\.so\.13 '; then
  for ruche_py in "${RUCHE_PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$ruche_py" ] && command -v "$ruche_py" >/dev/null 2>&1 || continue
    ruche_cuda_dirs=$(env -u LD_LIBRARY_PATH "$ruche_py" - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
dirs = []
for base in list(nvidia.__path__):
    for lib in sorted(glob.glob(os.path.join(base, "*", "lib"))):
        if glob.glob(os.path.join(lib, "*.so*")):
            dirs.append(lib)
print(":".join(dirs))
PY
)
    [ -n "$ruche_cuda_dirs" ] && break
  done
  if [ -z "$ruche_cuda_dirs" ]; then
    for d in "${CUDA_HOME:-}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/lib; do
      [ -e "$d/libcudnn.so.9" ] && { ruche_cuda_dirs=$d; break; }
    done
  fi
fi

# This Debian's libstdc++ needs glibc >= 2.36; where it cannot load, the machine's own is used.
ruche_base="$RUCHE_BUNDLE/lib${ruche_cuda_dirs:+:$ruche_cuda_dirs}"
if LD_LIBRARY_PATH="$RUCHE_BUNDLE/lib/fallback:$ruche_base" "$RUCHE_BUNDLE/bin/ruche" --version \
     >/dev/null 2>&1; then
  LD_LIBRARY_PATH="$RUCHE_BUNDLE/lib/fallback:$ruche_base${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  LD_LIBRARY_PATH="$ruche_base${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export LD_LIBRARY_PATH
export PATH="$RUCHE_BUNDLE/bin:$PATH"
export RUCHE_SOURCE_DIR="$RUCHE_BUNDLE/src"
export RUCHE_BINARY="$RUCHE_BUNDLE/bin/ruche"
if [ -d "$RUCHE_BUNDLE/lib/openmpi3" ]; then
  export OPAL_PREFIX="$RUCHE_BUNDLE" OPAL_EXEC_PREFIX="$RUCHE_BUNDLE"
  export OPAL_BINDIR="$RUCHE_BUNDLE/bin" OPAL_LIBDIR="$RUCHE_BUNDLE/lib"
  export OPAL_PKGLIBDIR="$RUCHE_BUNDLE/lib/openmpi3" OPAL_PKGDATADIR="$RUCHE_BUNDLE/share/openmpi"
  export OPAL_DATADIR="$RUCHE_BUNDLE/share" OPAL_DATAROOTDIR="$RUCHE_BUNDLE/share"
  export OPAL_SYSCONFDIR="$RUCHE_BUNDLE/etc/openmpi"
  export OMPI_MCA_mca_base_component_path="$RUCHE_BUNDLE/lib/openmpi3"
  [ -d "$RUCHE_BUNDLE/lib/pmix" ] && export PMIX_MCA_mca_base_component_path="$RUCHE_BUNDLE/lib/pmix"
  [ -d "$RUCHE_BUNDLE/share/pmix" ] && export PMIX_INSTALL_PREFIX="$RUCHE_BUNDLE"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ "${RUCHE_ENV_VERBOSE:-0}" = 1 ]; then
  echo "ruche bundle: $RUCHE_BUNDLE"
  echo "CUDA libraries from: ${ruche_cuda_dirs:-the system (ldconfig) or nowhere}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi
unset ruche_cuda_dirs ruche_py ruche_base
EOF

# ---- manifest ----
{
  echo "ruche GPU bundle, built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "glibc $(getconf GNU_LIBC_VERSION | cut -d' ' -f2) (the machine needs at least the highest GLIBC_ below)"
  echo "highest symbol versions needed:"
  for f in "$b"/bin/* "$b"/lib/*.so* "$b"/lib/fallback/*; do
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
tar -C "$stage" --owner=0 --group=0 -cf - bundle | xz -9e -T"$(nproc)" >"$archive.tmp"
mv "$archive.tmp" "$archive"
size=$(stat -c %s "$archive")
size_mib=$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1048576}')
echo "gpu-bundle: $archive: $size_mib MiB (${raw} MiB unpacked)"
if [ "$size" -gt $((limit_mib * 1048576)) ]; then
  die "bundle is $size_mib MiB, over the ${limit_mib} MiB budget"
fi
