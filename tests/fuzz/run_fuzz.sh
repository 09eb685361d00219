#!/usr/bin/env bash
# make fuzz FUZZ_SECONDS=N [FUZZ_TARGETS="npz tar ..."]: builds the libFuzzer targets in
# build-fuzz/ (clang -fsanitize=fuzzer,address,undefined; tests/fuzz/CMakeLists.txt) and mutates
# each for N seconds (niced), from tests/fuzz/corpus/<target>/ and crashes/<target>/. A crash,
# a leak, a timeout (10 s an input) or an out-of-memory (2 GiB) is saved as
# tests/fuzz/crashes/<target>/<kind>-<sha1> and fuzzing goes on for the time left (at most 5
# findings a target). New corpus entries stay in build-fuzz/corpus/<target>/ (not committed).
# ruche-run's hosts get N seconds of tests/fuzz/ruche_run_hosts.py. A summary line per target
# is appended to build-fuzz/fuzz-summary.txt; exit 1 when anything was found.
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-build-fuzz}
targets=${FUZZ_TARGETS:-}

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (apt-get install clang)" >&2; exit 2; }
if [[ ! -f $build/build.ninja ]]; then
  nice -n 10 cmake -S tests/fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ || exit 2
fi
nice -n 10 cmake --build "$build" -j "${FUZZ_JOBS:-2}" || exit 2

if [[ -z $targets ]]; then
  targets=$(cd "$build" && ls fuzz_* | sed 's/^fuzz_//' | tr '\n' ' ')
  targets+=" ruche_run"
fi
found=0
summary=$build/fuzz-summary.txt
for t in $targets; do
  crashes=tests/fuzz/crashes/$t
  if [[ $t == ruche_run ]]; then
    out=$(nice -n 10 python3 tests/fuzz/ruche_run_hosts.py launcher/ruche-run --seed "$RANDOM" \
          --seconds "$seconds" --crashes "$crashes" 2>&1)
    rc=$?
    echo "$out" | tail -20
    echo "$(date -u +%FT%TZ) ruche_run ${seconds}s: $(echo "$out" | tail -1)" >>"$summary"
    ((rc)) && found=1
    continue
  fi
  work=$build/corpus/$t
  mkdir -p "$work" "$crashes"
  start=$SECONDS runs=0 hits=0 log=$build/fuzz-$t.log
  : >"$log"
  while ((SECONDS - start < seconds && hits < 5)); do
    left=$((seconds - (SECONDS - start)))
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
      nice -n 10 "$build/fuzz_$t" -max_total_time="$left" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$t" >>"$log" 2>&1
    rc=$?
    runs=$((runs + $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 |
                     grep -o '[0-9]*$' || echo 0)))
    ((rc == 0)) && break
    hits=$((hits + 1))
    found=1
    grep -E "^==.*ERROR|^SUMMARY|runtime error|Test unit written" "$log" | tail -4
  done
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  line="$(date -u +%FT%TZ) $t ${seconds}s: ${runs} execs, ${cov:-cov: ?}, ${hits} finding(s)"
  echo "$line"
  echo "$line" >>"$summary"
done
exit "$found"
