#!/usr/bin/env bash
# GPU check: what of ruche works on an NVIDIA GPU, in two commands on a lent GPU machine.
#
# Here (the build machine): make gpu-bundle -> dist/ruche-gpu-bundle.tar.xz and
#   dist/fashion-mnist.tar.xz; it refuses when dist/ and the working tree together pass 60 MiB.
#   make gpu-bundle PREVIOUS=OLD_BUNDLE also packs an earlier bundle's ruche as
#   bundle/bin/ruche-previous (~1 MiB more; OLD_BUNDLE may be dist/'s own archive, read before it
#   is replaced; keep other old bundles outside dist/, which is carried whole).
# There, from the repository root, dist/ carried along, each command on a fresh machine:
#   bash benchmarks/gpu_check.sh OUT                                command 1: every step, <= 5 min
#   bash benchmarks/gpu_check.sh OUT --rerun-failed results.json   command 2: what did not pass,
#                          <= 3 min (results.json: command 1's, copied into the tree before)
#   bash benchmarks/gpu_check.sh --plan                            the steps, budgets and totals
#   bash benchmarks/gpu_check.sh OUT --only ops,fashion            named steps (after bundle)
# Steps (--plan has the budgets): bundle (unpack, nvidia-smi, `ruche devices`), ops (gpu_test's
# cases but NCCL's, one process streamed per case: a case that hangs is killed at its time, one
# that fails or crashes ends its process and a fresh one goes on from the next case), ops_nccl,
# equivalence (GPU vs CPU training in fp32, bf16, fp16), nccl_world (--comm nccl in a world of
# one, under the bundle's mpirun and alone), fashion (fashion_cnn toward 92%, the epochs that fit),
# throughput (ResNet-50 bf16 and tf32 vs PyTorch eager, benchmarks/gpu_throughput.py; when the
# bundle has bin/ruche-previous, bf16 alone: the new ruche, the previous one and PyTorch eager in
# rounds of one process each, rotated, as many as fit its 70 s, and the key figure adds
# new/previous, pooled and per round), time (one `ruche time --device cuda` table). Each step is
# killed, with all it started, at its budget; the next one runs anyway.
#
# OUT, rewritten whole after every step (and gtest case), so a killed check leaves what finished:
#   summary.md    one screen: verdict, card (and the bundle's commit and previous ruche, if any),
#                 step | result | seconds | budget | key figure
#   results.json  the same as data (steps: name, result pass|fail|skip|timeout|not-run|running,
#                 seconds, key, note; gtest cases); --rerun-failed reads it
#   logs.tar.gz   one log per step
#   ruche_time.txt, gpu_throughput-<card>-<date>.{json,md}   the time table, the benchmark's record
# Exit status: 0 every step passed or skipped, 1 not, 2 usage.
# The python is the first python3 on PATH (the machine's, with PyTorch), or RUCHE_PYTHON; the
# steps get it as RUCHE_PYTHON. RUCHE_GPU_SCRATCH (default /tmp/ruche-gpu): where the bundle
# unpacks. RUCHE_GPU_BUNDLE: another bundle archive. RUCHE_FASHION_EPOCHS: fixed epochs.
set -euo pipefail

py=${RUCHE_PYTHON:-$(command -v python3 || true)}
[ -n "$py" ] && [ -x "$(command -v "$py")" ] \
  || { echo "gpu_check: error: python3 not found" >&2; exit 2; }
exec "$py" "$(dirname "$0")/gpu_check.py" "$@"
