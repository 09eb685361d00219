#!/usr/bin/env bash
# The GPU bundle's env.sh (tools/scripts/bundle_env.sh): where cuDNN 9, cuBLAS 13 and NCCL 2 come
# from, on fake layouts (a fake `ldconfig -p`, fake nvidia pip packages, a fake /usr/local/cuda),
# so the real machine's libraries play no part.
#   bundle_env_test.sh SOURCE_DIR
set -uo pipefail
src=${1:?usage: bundle_env_test.sh SOURCE_DIR}
t=$(mktemp -d "${TMPDIR:-/tmp}/bundle_env_test.XXXXXX")
trap 'rm -rf "$t"' EXIT
failures=0

# A fake bundle: env.sh, bin/ruche (a stub that answers --version), lib/, lib/fallback/.
b="$t/bundle"
mkdir -p "$b/bin" "$b/lib/fallback"
cp "$src/tools/scripts/bundle_env.sh" "$b/env.sh"
printf '#!/bin/sh\nexit 0\n' >"$b/bin/ruche"
chmod +x "$b/bin/ruche"

# Empty files named like the libraries: layout DIR LIB...
layout() {
  local dir=$1
  shift
  mkdir -p "$dir"
  for lib in "$@"; do : >"$dir/$lib"; done
}
all=(libcudnn.so.9 libcublas.so.13 libnccl.so.2)
layout "$t/sys/lib" libcudnn.so.9 libcublas.so.13 libnccl.so.2
layout "$t/sys_no_nccl/lib" libcudnn.so.9 libcublas.so.13
layout "$t/site/nvidia/cudnn/lib" libcudnn.so.9 libcudnn_ops.so.9
layout "$t/site/nvidia/cublas/lib" libcublas.so.13 libcublasLt.so.13
layout "$t/site/nvidia/nccl/lib" libnccl.so.2
mkdir -p "$t/site/nvidia/nccl/include" "$t/empty/nvidia/nothing/lib"
layout "$t/cuda/lib64" libcudnn.so.9
pip="$t/site/nvidia"

# `ldconfig -p` text naming DIR/LIB for each LIB: ldconfig_text FILE DIR LIB...
ldconfig_text() {
  local file=$1 dir=$2
  shift 2
  echo "3 libs found in cache \`/etc/ld.so.cache'" >"$file"
  for lib in "$@"; do
    printf '\t%s (libc6,x86-64) => %s/%s\n' "$lib" "$dir" "$lib" >>"$file"
  done
}
ldconfig_text "$t/ld_all" "$t/sys/lib" "${all[@]}"
ldconfig_text "$t/ld_no_nccl" "$t/sys_no_nccl/lib" libcudnn.so.9 libcublas.so.13
ldconfig_text "$t/ld_none" /nowhere

# Sources env.sh verbosely in a clean shell (under set -euo pipefail, as a script might) with the
# given VAR=VALUE settings; sets out (stdout and the final LD_LIBRARY_PATH as "LDP=...") and err.
run_env() {
  out=$(env -u LD_LIBRARY_PATH -u CUDA_HOME -u RUCHE_IGNORE_SYSTEM_CUDA -u RUCHE_NVIDIA_PIP_ROOT \
          -u RUCHE_CUDA_FALLBACK_DIRS -u RUCHE_LDCONFIG_OUTPUT RUCHE_ENV_VERBOSE=1 "$@" \
          bash -c 'set -euo pipefail; . "$0/env.sh"; echo "LDP=$LD_LIBRARY_PATH"' "$b" 2>"$t/stderr")
  err=$(cat "$t/stderr")
}
expect() {  # expect CASE WHAT LINE: out has LINE
  if ! grep -qxF -- "$3" <<<"$out"; then
    echo "FAIL [$1] $2: no line '$3' in:"
    sed 's/^/    /' <<<"$out"
    failures=$((failures + 1))
  fi
}
expect_err() {  # expect_err CASE TEXT: stderr is one line holding TEXT, or empty when TEXT is ""
  if { [ -z "$2" ] && [ -n "$err" ]; } ||
     { [ -n "$2" ] && { [ "$(wc -l <<<"$err")" != 1 ] || ! grep -qF -- "$2" <<<"$err"; }; }; then
    echo "FAIL [$1] stderr: expected '${2:-nothing}', got:"
    sed 's/^/    /' <<<"$err"
    failures=$((failures + 1))
  fi
}
from() { printf '%-9s %-15s <- %s' "$1" "$2" "$3"; }
pip_dirs="$pip/cublas/lib:$pip/cudnn/lib:$pip/nccl/lib"

# 1. The system has all three: they come from it; pip's packages are not added. The stub ruche
# answers --version, so the bundle's fallback libstdc++ directory comes first.
run_env RUCHE_LDCONFIG_OUTPUT="$t/ld_all" RUCHE_NVIDIA_PIP_ROOT="$pip" RUCHE_CUDA_FALLBACK_DIRS=
expect system_all path "LDP=$b/lib/fallback:$b/lib"
expect system_all cudnn "$(from 'cuDNN 9' libcudnn.so.9 "$t/sys/lib (system)")"
expect system_all cublas "$(from 'cuBLAS 13' libcublas.so.13 "$t/sys/lib (system)")"
expect system_all nccl "$(from 'NCCL 2' libnccl.so.2 "$t/sys/lib (system)")"
expect_err system_all ""

# 2. The system lacks NCCL: its directory first, then pip's, so only NCCL comes from pip.
run_env RUCHE_LDCONFIG_OUTPUT="$t/ld_no_nccl" RUCHE_NVIDIA_PIP_ROOT="$pip" RUCHE_CUDA_FALLBACK_DIRS=
expect system_no_nccl path "LDP=$b/lib/fallback:$b/lib:$t/sys_no_nccl/lib:$pip_dirs"
expect system_no_nccl cudnn "$(from 'cuDNN 9' libcudnn.so.9 "$t/sys_no_nccl/lib (system)")"
expect system_no_nccl nccl "$(from 'NCCL 2' libnccl.so.2 "$pip/nccl/lib (pip)")"
expect_err system_no_nccl ""

# 3. Only pip's packages (and a ruche that cannot start with the fallback libstdc++: left out).
printf '#!/bin/sh\nexit 1\n' >"$b/bin/ruche"
run_env RUCHE_LDCONFIG_OUTPUT="$t/ld_none" RUCHE_NVIDIA_PIP_ROOT="$pip" RUCHE_CUDA_FALLBACK_DIRS=
expect only_pip path "LDP=$b/lib:$pip_dirs"
expect only_pip cudnn "$(from 'cuDNN 9' libcudnn.so.9 "$pip/cudnn/lib (pip)")"
expect only_pip cublas "$(from 'cuBLAS 13' libcublas.so.13 "$pip/cublas/lib (pip)")"
expect only_pip nccl "$(from 'NCCL 2' libnccl.so.2 "$pip/nccl/lib (pip)")"
expect_err only_pip ""

# 3b. The same, found by asking python for its nvidia package (a namespace package on PYTHONPATH;
# a real one on this machine would only add directories after ours, hence the looser check).
run_env RUCHE_LDCONFIG_OUTPUT="$t/ld_none" RUCHE_CUDA_FALLBACK_DIRS= RUCHE_PYTHON=python3 \
  PYTHONPATH="$t/site"
if ! grep -q "^LDP=$b/lib:.*$pip/nccl/lib" <<<"$out"; then
  echo "FAIL [pip_via_python] nvidia/nccl/lib not on the path:"; sed 's/^/    /' <<<"$out"
  failures=$((failures + 1))
fi

# 3c. RUCHE_IGNORE_SYSTEM_CUDA=1: the system's copies are passed over for pip's.
run_env RUCHE_LDCONFIG_OUTPUT="$t/ld_all" RUCHE_NVIDIA_PIP_ROOT="$pip" RUCHE_CUDA_FALLBACK_DIRS= \
  RUCHE_IGNORE_SYSTEM_CUDA=1
expect ignore_system path "LDP=$b/lib:$pip_dirs"

# 4. /usr/local/cuda as the last resort: the system lacks NCCL, pip has nothing, cuda has cuDNN.
run_env RUCHE_LDCONFIG_OUTPUT="$t/ld_no_nccl" RUCHE_NVIDIA_PIP_ROOT="$t/empty/nvidia" \
  RUCHE_CUDA_FALLBACK_DIRS="$t/cuda/lib64:$t/nowhere:$t/cuda/lib64"  # twice: CUDA_HOME=/usr/local/cuda
expect cuda_fallback path "LDP=$b/lib:$t/sys_no_nccl/lib:$t/cuda/lib64"
expect cuda_fallback nccl "$(from 'NCCL 2' libnccl.so.2 "not found")"
expect_err cuda_fallback "libnccl.so.2 (NCCL 2)"

# 5. Nothing anywhere: one line naming all three; ruche_env_check shows ldd's "not found" lines
# (bin/ruche is a real executable that needs a library that exists nowhere).
if command -v patchelf >/dev/null && [ -x /bin/true ]; then
  cp /bin/true "$b/bin/ruche"
  patchelf --add-needed libruche_fake_missing.so.1 "$b/bin/ruche"
  missing_check=1
else
  missing_check=0
fi
run_env RUCHE_LDCONFIG_OUTPUT="$t/ld_none" RUCHE_NVIDIA_PIP_ROOT="$t/empty/nvidia" \
  RUCHE_CUDA_FALLBACK_DIRS=
expect nothing path "LDP=$b/lib"
expect nothing cudnn "$(from 'cuDNN 9' libcudnn.so.9 "not found")"
if [ "$missing_check" = 1 ]; then
  ldd_line="ruche env.sh: ldd: libruche_fake_missing.so.1 => not found"
  if [ "$(head -1 <<<"$err")" != "ruche env.sh: not found in the system (ldconfig), Python's nvidia packages or /usr/local/cuda: libcudnn.so.9 (cuDNN 9), libcublas.so.13 (cuBLAS 13), libnccl.so.2 (NCCL 2)" ] ||
     [ "$(sed -n 2p <<<"$err")" != "$ldd_line" ] || [ "$(wc -l <<<"$err")" != 2 ]; then
    echo "FAIL [nothing] stderr:"; sed 's/^/    /' <<<"$err"
    failures=$((failures + 1))
  fi
else
  expect_err nothing "libcudnn.so.9 (cuDNN 9), libcublas.so.13 (cuBLAS 13), libnccl.so.2 (NCCL 2)"
fi

if [ "$failures" != 0 ]; then
  echo "bundle_env_test: $failures failures"
  exit 1
fi
echo "bundle_env_test: all cases pass"
