#!/usr/bin/env bash
# make gpu-bundle PREVIOUS=OLD_BUNDLE's packing (tools/scripts/gpu_bundle_previous.sh) on tiny
# fake bundles: the "old ruche" is a copy of xz (an ELF that loads one non-glibc library,
# liblzma, and answers --version), its old bundle lib/ holds liblzma. Checks: bin/ruche-previous
# and the MANIFEST line (the old commit, its --version); a library the new lib/ lacks, or holds
# with other bytes, goes to lib/previous and ruche-previous loads it from there (DT_RPATH, ahead
# of LD_LIBRARY_PATH = the new lib/); an identical one is not copied; an archive that is not a
# bundle, a missing file and a library found nowhere are refused; the Makefile passes PREVIOUS.
#   gpu_bundle_previous_test.sh SOURCE_DIR
set -uo pipefail
src=${1:?usage: gpu_bundle_previous_test.sh SOURCE_DIR}
script="$src/tools/scripts/gpu_bundle_previous.sh"
t=$(mktemp -d "${TMPDIR:-/tmp}/gpu_bundle_previous_test.XXXXXX")
trap 'rm -rf "$t"' EXIT
failures=0
ok() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
check() { if eval "$2"; then ok "$1"; else fail "$1"; fi; }

for tool in xz patchelf readelf ldd; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found"; exit 1; }
done
xz_bin=$(readlink -f "$(command -v xz)")
lzma=$(ldd "$xz_bin" | awk '$1 ~ /^liblzma/ {print $3}')
lzma_name=$(ldd "$xz_bin" | awk '$1 ~ /^liblzma/ {print $1}')
[ -n "$lzma" ] || { echo "FAIL: xz here loads no liblzma (ldd $xz_bin)"; exit 1; }

# An old bundle archive: bin/ruche (xz, RUNPATH $ORIGIN/../lib), lib/liblzma, MANIFEST.
old_bundle() {  # old_bundle ARCHIVE [extra patchelf args for bin/ruche]
  local archive=$1 s
  shift
  s=$(mktemp -d "$t/old.XXXXXX")
  mkdir -p "$s/bundle/bin" "$s/bundle/lib/fallback"
  install -m 755 "$xz_bin" "$s/bundle/bin/ruche"
  patchelf --set-rpath '$ORIGIN/../lib' "$s/bundle/bin/ruche"
  [ $# -gt 0 ] && patchelf "$@" "$s/bundle/bin/ruche"
  install -m 644 "$(readlink -f "$lzma")" "$s/bundle/lib/$lzma_name"
  patchelf --set-rpath '$ORIGIN' "$s/bundle/lib/$lzma_name"
  install -m 755 "$xz_bin" "$s/bundle/bin/gpu_test"  # a test executable: not taken
  printf 'ruche GPU bundle, built 2026-11-30T10:00:00Z on vm\ncommit abc1234\n' \
    >"$s/bundle/MANIFEST"
  tar -C "$s" -cf - bundle | xz -1 >"$archive"
}
new_bundle() {  # new_bundle DIR: a staged bundle/ with bin/ruche and an empty lib/
  mkdir -p "$1/bin" "$1/lib"
  printf '#!/bin/sh\necho ruche new\n' >"$1/bin/ruche"
  chmod +x "$1/bin/ruche"
}
# Where BUNDLE/bin/ruche-previous loads liblzma from, with BUNDLE/lib first in
# LD_LIBRARY_PATH (as env.sh sets it).
lzma_of() {
  LD_LIBRARY_PATH="$1/lib" ldd "$1/bin/ruche-previous" | awk '$1 ~ /^liblzma/ {print $3}' \
    | xargs readlink -f
}
old_bundle "$t/old.tar.xz"

# 1. The new lib/ lacks liblzma: it goes to lib/previous, ruche-previous loads it from there.
new_bundle "$t/n1"
line=$(bash "$script" "$t/n1" "$t/old.tar.xz" 2>"$t/err1")
rc=$?
check "packs bin/ruche-previous (exit $rc: $(tail -1 "$t/err1"))" \
  '[ $rc = 0 ] && [ -x "$t/n1/bin/ruche-previous" ] && [ ! -e "$t/n1/bin/gpu_test" ]'
want="previous: bin/ruche-previous <- old.tar.xz (commit abc1234, built 2026-11-30T10:00:00Z),"
want+=" \`ruche --version\`: xz (XZ Utils)"
check "MANIFEST line names the old commit and its --version: $line" '[[ $line == "$want"* ]]'
check "a library the new lib/ lacks goes to lib/previous, named in the line" \
  '[ -f "$t/n1/lib/previous/$lzma_name" ] && [[ $line == *"lib/previous: $lzma_name" ]]'
dyn=$(readelf -d "$t/n1/bin/ruche-previous")
check "ruche-previous has DT_RPATH lib/previous:lib (searched before LD_LIBRARY_PATH)" \
  'grep -q "(RPATH).*\$ORIGIN/../lib/previous:\$ORIGIN/../lib" <<<"$dyn" \
   && ! grep -q RUNPATH <<<"$dyn"'
where=$(lzma_of "$t/n1")
check "it loads lib/previous's liblzma ($where)" '[ "$where" = "$t/n1/lib/previous/$lzma_name" ]'
check "it runs from the new bundle" \
  'env -u LD_LIBRARY_PATH "$t/n1/bin/ruche-previous" --version | grep -q "XZ Utils"'

# 2. The new lib/ holds the same bytes: nothing copied, RUNPATH as the old bundle had.
new_bundle "$t/n2"
tar -xJf "$t/old.tar.xz" -C "$t" --transform "s|^bundle/lib/|n2/lib/|" "bundle/lib/$lzma_name"
line=$(bash "$script" "$t/n2" "$t/old.tar.xz" 2>/dev/null)
check "an identical library is not copied: $line" \
  '[ ! -e "$t/n2/lib/previous" ] && [[ $line == *"lib/previous: none"* ]] \
   && readelf -d "$t/n2/bin/ruche-previous" | grep -q "(RUNPATH).*\[\$ORIGIN/../lib\]"'

# 3. The new lib/ holds other bytes under the same name: the old one wins for ruche-previous,
#    even with the new lib/ first in LD_LIBRARY_PATH (as env.sh sets it).
new_bundle "$t/n3"
install -m 644 "$(readlink -f "$lzma")" "$t/n3/lib/$lzma_name"
patchelf --set-rpath '$ORIGIN/other' "$t/n3/lib/$lzma_name"
line=$(bash "$script" "$t/n3" "$t/old.tar.xz" 2>/dev/null)
where=$(lzma_of "$t/n3")
check "a library with other bytes: the old copy in lib/previous, loaded first ($where)" \
  '[ -f "$t/n3/lib/previous/$lzma_name" ] && [ "$where" = "$t/n3/lib/previous/$lzma_name" ]'

# 4. Refusals.
new_bundle "$t/n4"
bash "$script" "$t/n4" "$t/nothere.tar.xz" 2>"$t/err4" >/dev/null
rc=$?
check "a missing PREVIOUS is refused: $(cat "$t/err4")" \
  '[ $rc != 0 ] && grep -q "no such file" "$t/err4"'
mkdir -p "$t/notbundle/stuff" && echo x >"$t/notbundle/stuff/a"
tar -C "$t/notbundle" -cf - stuff | xz -1 >"$t/notbundle.tar.xz"
bash "$script" "$t/n4" "$t/notbundle.tar.xz" 2>"$t/err5" >/dev/null
rc=$?
check "an archive without bundle/bin/ruche is refused: $(head -c 150 "$t/err5")" \
  '[ $rc != 0 ] && grep -q "holds no bundle/bin/ruche" "$t/err5" \
   && [ ! -e "$t/n4/bin/ruche-previous" ]'
old_bundle "$t/old_missing.tar.xz" --add-needed libruche_gone.so.7
bash "$script" "$t/n4" "$t/old_missing.tar.xz" 2>"$t/err6" >/dev/null
rc=$?
check "a library found nowhere is refused: $(cat "$t/err6")" \
  '[ $rc != 0 ] && grep -q "needs libruche_gone.so.7" "$t/err6"'

# 5. The Makefile hands PREVIOUS to gpu_bundle.sh (make -n: nothing runs).
dry=$(make -n -C "$src" gpu-bundle PREVIOUS=/x/old.tar.xz BUILD=/nonexistent 2>&1)
check "make gpu-bundle PREVIOUS=... passes --previous" \
  'grep -q "gpu_bundle.sh /nonexistent --previous /x/old.tar.xz" <<<"$dry"'
dry=$(make -n -C "$src" gpu-bundle BUILD=/nonexistent 2>&1)
check "make gpu-bundle without PREVIOUS passes none" \
  'grep -q "gpu_bundle.sh /nonexistent$" <<<"$dry"'
check "gpu_bundle.sh parses" 'bash -n "$src/tools/scripts/gpu_bundle.sh"'

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
