#!/usr/bin/env bash
# make gpu-bundle PREVIOUS=OLD_BUNDLE (gpu_bundle.sh BUILD --previous OLD_BUNDLE): an older
# bundle's ruche packed into the new one as bin/ruche-previous, so that the GPU check's
# throughput step measures the new ruche against it in the same command, on the same card
# (benchmarks/gpu_check.py, benchmarks/gpu_throughput.py --previous).
#
#   tools/scripts/gpu_bundle_previous.sh BUNDLE OLD_BUNDLE
#
# BUNDLE: the bundle/ directory gpu_bundle.sh is staging (its lib/ filled, its RPATHs set).
# OLD_BUNDLE: a ruche-gpu-bundle.tar.xz of an earlier make gpu-bundle (dist/'s own may be named:
# it is read before gpu_bundle.sh replaces it). From it: bundle/bin/ruche, and of the libraries
# that ruche loads from the old bundle (ldd, through its RUNPATH) those the new lib/ lacks or
# holds with other bytes: into lib/previous/. With any there, ruche-previous (and they) get a
# DT_RPATH, which the loader searches before env.sh's LD_LIBRARY_PATH, so it loads its own.
# Then, from the new layout here: ldd must resolve each of them inside BUNDLE, and
# `ruche-previous --version` must run. Prints the line for BUNDLE/MANIFEST on stdout:
#   previous: bin/ruche-previous <- NAME (commit C, built T), `ruche --version`: V;
#   lib/previous: LIBS (or none)
set -euo pipefail

die() { echo "gpu-bundle: error: $*" >&2; exit 1; }
b=${1:?usage: gpu_bundle_previous.sh BUNDLE OLD_BUNDLE}
old=${2:?usage: gpu_bundle_previous.sh BUNDLE OLD_BUNDLE}
[ -d "$b/bin" ] && [ -d "$b/lib" ] || die "$b is not a staged bundle (no bin/ and lib/)"
[ -f "$old" ] || die "PREVIOUS=$old: no such file (an older dist/ruche-gpu-bundle.tar.xz)"
for tool in ldd patchelf tar xz cmp; do
  command -v "$tool" >/dev/null || die "$tool not found (make deps installs patchelf)"
done

t=$(mktemp -d "${TMPDIR:-/tmp}/ruche-bundle-previous.XXXXXX")
trap 'rm -rf "$t"' EXIT
# bin/ruche, MANIFEST and lib/ only (not the old test executables).
tar -xJf "$old" -C "$t" --wildcards --no-wildcards-match-slash 'bundle/bin/ruche' \
    'bundle/MANIFEST' 'bundle/lib/*' 2>/dev/null || true
[ -x "$t/bundle/bin/ruche" ] \
  || die "$old holds no bundle/bin/ruche (is it a ruche GPU bundle?)"
old_root=$(cd "$t/bundle" && pwd -P)

# Not packed: glibc's own and CUDA's (the GPU machine brings them), and libstdc++ / libgcc_s
# (bundle/lib/fallback holds them, or the machine does).
source "$(dirname "$0")/machine_libs.sh"
not_packed() { machine_lib "$1" || [[ $1 == libstdc++.so* || $1 == libgcc_s.so* ]]; }

# What the old ruche loads from its own bundle, and what of that the new lib/ has already.
mkdir -p "$t/previous"
declare -A from_old=()
while IFS= read -r line; do
  if [[ $line =~ ^[[:space:]]*([^[:space:]]+)[[:space:]]=\>[[:space:]]not[[:space:]]found ]]; then
    not_packed "${BASH_REMATCH[1]}" \
      || die "$old's ruche needs ${BASH_REMATCH[1]}, which neither its bundle nor this machine has"
    continue
  fi
  [[ $line =~ ^[[:space:]]*([^[:space:]]+)[[:space:]]=\>[[:space:]](/[^[:space:]]+) ]] || continue
  name=${BASH_REMATCH[1]}
  path=$(readlink -f "${BASH_REMATCH[2]}")
  if [[ $path == "$old_root"/* ]]; then
    from_old[$name]=$path
    if ! cmp -s "$path" "$b/lib/$name" 2>/dev/null; then
      install -m 644 "$path" "$t/previous/$name"
    fi
  elif ! not_packed "$name" && [ ! -e "$b/lib/$name" ]; then
    install -m 644 "$path" "$t/previous/$name"  # a hand-made bundle's: from this machine
    from_old[$name]=$path
  fi
done < <(env -u LD_LIBRARY_PATH ldd "$t/bundle/bin/ruche" 2>/dev/null)

install -m 755 "$t/bundle/bin/ruche" "$b/bin/ruche-previous"
shopt -s nullglob
own=("$t"/previous/*)
if [ ${#own[@]} -gt 0 ]; then
  mkdir -p "$b/lib/previous"
  for lib in "${own[@]}"; do
    install -m 644 "$lib" "$b/lib/previous/"
    patchelf --force-rpath --set-rpath '$ORIGIN:$ORIGIN/..' "$b/lib/previous/${lib##*/}"
  done
  patchelf --force-rpath --set-rpath '$ORIGIN/../lib/previous:$ORIGIN/../lib' \
    "$b/bin/ruche-previous"
else
  patchelf --set-rpath '$ORIGIN/../lib' "$b/bin/ruche-previous"
fi

# From the new layout: each library it took from the old bundle resolves to its copy in
# lib/previous, or to the new lib/'s identical one, with the new lib/ first in LD_LIBRARY_PATH
# (as env.sh sets it).
b_root=$(cd "$b" && pwd -P)
resolved=$(LD_LIBRARY_PATH="$b_root/lib" ldd "$b/bin/ruche-previous" 2>&1) \
  || die "ldd $b/bin/ruche-previous failed: $resolved"
for name in "${!from_old[@]}"; do
  path=$(awk -v n="$name" '$1 == n && $2 == "=>" {print $3}' <<<"$resolved")
  path=$(readlink -f "$path" 2>/dev/null || true)
  want=$b_root/lib/$name
  [ -e "$b_root/lib/previous/$name" ] && want=$b_root/lib/previous/$name
  [ "$path" = "$want" ] \
    || die "bin/ruche-previous would load $name from ${path:-nowhere}, not from $want"
done
version=$(env -u LD_LIBRARY_PATH "$b/bin/ruche-previous" --version 2>&1) \
  || die "bin/ruche-previous --version failed here: $(tail -1 <<<"$version")"

commit=$(sed -n 's/^commit //p' "$t/bundle/MANIFEST" 2>/dev/null | head -1)
built=$(sed -n 's/^ruche GPU bundle, built \([^ ]*\).*/\1/p' "$t/bundle/MANIFEST" 2>/dev/null \
        | head -1)
libs=$(cd "$t/previous" && ls | tr '\n' ' ' | sed 's/ $//')
echo "previous: bin/ruche-previous <- ${old##*/} (commit ${commit:-unknown}, built" \
     "${built:-?}), \`ruche --version\`: $(head -1 <<<"$version"); lib/previous:" \
     "${libs:-none (the new lib/ has its libraries)}"
echo "gpu-bundle: bin/ruche-previous from $old (commit ${commit:-unknown});" \
     "${#own[@]} libraries of its own in lib/previous" >&2
