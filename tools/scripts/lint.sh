#!/usr/bin/env bash
# make lint [BUILD=build]: clang-tidy (.clang-tidy) over the C++ sources of BUILD's
# compile_commands.json (not the .cu files, not the generated *.pb.cc) and cppcheck over the same
# sources; exit 1 on any finding, 77 when a tool is missing (make deps installs both).
# LINT_JOBS (nproc) runs files in parallel; LINT_FILES (a regex) narrows the files. The whole tree
# costs about 32 CPU-minutes (docs/ARCHITECTURE.md, Tests), so CI does not run it.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
jobs=${LINT_JOBS:-$(nproc)}
root=$(pwd)
files=${LINT_FILES:-"^$root/(engine|ops|comm|tools|tests|benchmarks)/.*\\.cc\$"}
for tool in run-clang-tidy clang-tidy cppcheck; do
  command -v "$tool" >/dev/null || { echo "lint: $tool not found (make deps)" >&2; exit 77; }
done
[[ -f $build/compile_commands.json ]] ||
  { echo "lint: $build/compile_commands.json not found (make build)" >&2; exit 2; }

failed=0
start=$SECONDS
echo "lint: clang-tidy over $build/compile_commands.json ($jobs jobs)"
run-clang-tidy -p "$build" -j "$jobs" -quiet "$files" >"$build/clang-tidy.log" 2>&1
# run-clang-tidy colours its output always; one line per finding, once (a header's come per file),
# and one per file clang-tidy could not process (gone since the build was configured, say)
sed 's/\x1b\[[0-9;]*m//g' "$build/clang-tidy.log" |
  grep -E '^/.*: (warning|error): |^Error while processing ' | sort -u \
  >"$build/clang-tidy-findings.txt"
if [[ -s $build/clang-tidy-findings.txt ]]; then
  cat "$build/clang-tidy-findings.txt"
  echo "lint: clang-tidy: $(wc -l <"$build/clang-tidy-findings.txt") findings" \
       "(in context: $build/clang-tidy.log)"
  failed=1
fi
echo "lint: clang-tidy took $((SECONDS - start)) s"

start=$SECONDS
echo "lint: cppcheck"
mkdir -p "$build/cppcheck"
# cppcheck reads no system header, so the generated *.pb.h would stop at their protobuf version
# check (#error): it is given the installed headers' numbers.
port_def=$(echo '#include <google/protobuf/port_def.inc>' | c++ -x c++ -E -dM - 2>/dev/null |
           grep -E '#define PROTOBUF_(MIN_PROTOC_)?VERSION ' | awk '{print "-D" $2 "=" $3}')
cppcheck --project="$build/compile_commands.json" --file-filter='*.cc' --config-exclude="$build" \
  --suppress="*:$build/*" $port_def --enable=warning,performance,portability \
  --library=googletest,posix --inline-suppr --error-exitcode=1 -q -j "$jobs" \
  --cppcheck-build-dir="$build/cppcheck" --suppress=missingIncludeSystem \
  --suppressions-list=tools/scripts/cppcheck-suppressions.txt \
  --template='{file}:{line}:{column}: {severity}: {message} [{id}]' || failed=1
echo "lint: cppcheck took $((SECONDS - start)) s"
exit "$failed"
