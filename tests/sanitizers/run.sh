#!/usr/bin/env bash
# make test-asan / make test-tsan: build ruche instrumented in its own directory (CPU only) and run
# the tests that suit the sanitizer there. Any finding fails its test (tests/sanitizers/README.md).
#   tests/sanitizers/run.sh asan|tsan BUILD_DIR JOBS [ctest arguments...]
set -euo pipefail
mode=$1 build=$2 jobs=$3
shift 3
cd "$(dirname "$0")/../.."
here=$PWD/tests/sanitizers

case "$mode" in
  asan)
    sanitize=address,undefined
    # LSan at exit, with whole allocation stacks: the suppressions name Open MPI's own leaks by
    # its libraries, which the frame-pointer unwinder cannot walk through.
    export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:check_initialization_order=1:strict_init_order=1
    export LSAN_OPTIONS=suppressions=$here/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # Everything `make test` runs (tests/sanitizers/README.md says why nothing is left out).
    select=(-LE 'gpu|slow')
    targets=(all)
    ;;
  tsan)
    sanitize=thread
    export TSAN_OPTIONS="suppressions=$here/tsan.supp:halt_on_error=1:second_deadlock_stack=1"
    # libgomp is not instrumented: one OpenMP thread, so its regions run on the calling thread.
    export OMP_NUM_THREADS=1
    # The tests of code that starts threads: loader workers and the batch ring, shard conversion
    # and indexing (data_test), the checkpoint writer (checkpoint_test, train_checkpoint), the
    # comm thread, reducer, watchdog and heartbeat (comm_test, sync_bn_test, comm_fault_*), all
    # of them together in real 2-rank runs (train_data_parallel).
    select=(-LE 'gpu|slow' -R '^(data_test|checkpoint_test|train_test|comm_test_(np2|single)|sync_bn_test_(np2|single)|comm_fault_.*|train_data_parallel|train_checkpoint)$')
    targets=(ruche data_test checkpoint_test train_test comm_test sync_bn_test comm_fault)
    ;;
  *)
    echo "usage: tests/sanitizers/run.sh asan|tsan BUILD_DIR JOBS [ctest arguments...]" >&2
    exit 2
    ;;
esac

if [ ! -f "$build/build.ninja" ]; then
  # -O1 -g1: line numbers in the reports at a fraction of -O2 -g's compile time (a full build on
  # 2 cores). No -Werror: gcc warns differently under -fsanitize; build/ holds the tree to it.
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
        -DRUCHE_SANITIZE="$sanitize" -DRUCHE_WERROR=OFF
fi
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
ctest --test-dir "$build" --output-on-failure -j "$jobs" "${select[@]}" "$@"
