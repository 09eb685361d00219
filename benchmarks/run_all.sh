#!/usr/bin/env bash
# make bench: every benchmark, PyTorch at its best (OpenBLAS, no OPENBLAS_CORETYPE/L2 override,
# which these machines set for older OpenBLAS builds), results in benchmarks/results/.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
python=${RUCHE_PYTHON:-}
if [ -z "$python" ]; then
  python=$(grep -m1 '^RUCHE_PYTHON:' "$build/CMakeCache.txt" | cut -d= -f2)
fi
echo "bench: using $python; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for the benchmarks"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/conv_vs_torch.py" "$build"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/throughput.py" "$build"
# allreduce: ruche's MpiCommunicator vs raw MPI_Allreduce, 2 ranks on this machine (root needs
# --allow-run-as-root; --oversubscribe lets 2 ranks start however few slots Open MPI counts).
OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe $([ "$(id -u)" = 0 ] && echo --allow-run-as-root) \
  "$build/allreduce_bench" --out "$here/results"
# data parallel, 2 ranks x 1 thread on this machine: all-reduce hidden behind backward (from
# --timeline) and weak scaling against 1 rank (both run mpirun themselves).
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/overlap.py" "$build"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/scaling.py" "$build"
# checkpoint cost: step time while an asynchronous save is in flight against without (same run),
# and checkpoint write/load MB/s against a plain write+fsync / read of the same bytes.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/checkpoint_cost.py" "$build"
# input pipeline: decoded and augmented ImageNet-like images/s, ruche's shard loader (ruche
# data-bench) vs PyTorch's DataLoader + torchvision on the same JPEGs, 1 and 2 workers.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/input_pipeline.py" "$build"
# network (root only; skipped otherwise): 2 network-namespace hosts, tbf-limited links at 0.5, 1,
# 2, 5 Gbit/s and unlimited: ruche vs raw MPI_Allreduce and the training step's exposed
# communication at each rate (~10 minutes). Before projection, which reads it.
if [ "$(id -u)" = 0 ]; then
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/network.py" "$build"
fi
# projection: scaling to 8..1024 GPUs predicted from a step model and the results above, checked
# against our 2-rank scaling and Horovod's published 512-GPU figures (no runs; a few seconds).
"$python" "$here/projection.py"
