#!/usr/bin/env python3
"""The NCCL path on one GPU: `ruche train --device cuda --comm nccl` routes every device buffer
through NCCL even in a world of one (gradient buckets all-reduced or, with --zero 1,
reduce-scattered and the parameters all-gathered; batch-norm statistics broadcast), where a plain
run communicates nothing. Each collective of one rank is the identity, so the weights after a few
steps must equal the plain run's: the same bits, or within 1e-6 norm-relative. A stream-ordering
bug (a collective reading gradients before backward wrote them, the optimizer reading a shard
before the reduce-scatter filled it) shows here as different weights. Runs under
`mpirun -np 1` (as a job's ranks start) and alone (a singleton world). Exits 77 (ctest's skip)
without a CUDA device.

usage: nccl_world_of_one.py RUCHE_BINARY MPIEXEC WORKDIR
"""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np

from train_equivalence import NET, SOLVER, has_cuda

MPI_FLAGS = ["--allow-run-as-root"] if os.geteuid() == 0 else []
TOLERANCE = 1e-6


def train(ruche, work, name, flags, mpirun=None):
    run = work / f"run-{name}"
    shutil.rmtree(run, ignore_errors=True)
    cmd = [ruche, "train", "--net", str(work / "net.prototxt"), "--solver",
           str(work / "solver.prototxt"), "--data", str(work / "data.npz"), "--init-weights",
           str(work / "init.npz"), "--out", str(run), "--device", "cuda", "--no-checkpoint",
           "--max-steps", "6"] + flags
    if mpirun:
        cmd = [mpirun, *MPI_FLAGS, "-np", "1"] + cmd
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=300)
    return dict(np.load(run / "model.npz"))


def main() -> int:
    ruche, mpirun, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    if not has_cuda(ruche):
        print("skipped: no CUDA device")
        return 77
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    np.savez(work / "data.npz", x=rng.random((256, 1, 12, 12), dtype=np.float32),
             y=rng.integers(0, 4, 256).astype(np.int32))
    (work / "net.prototxt").write_text(NET)
    (work / "solver.prototxt").write_text(SOLVER)
    init = work / "run-init"
    shutil.rmtree(init, ignore_errors=True)
    subprocess.run([ruche, "train", "--net", str(work / "net.prototxt"), "--solver",
                    str(work / "solver.prototxt"), "--data", str(work / "data.npz"), "--out",
                    str(init), "--max-steps", "1", "--lr", "0", "--no-checkpoint"],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.copy(init / "model.npz", work / "init.npz")

    plain = train(ruche, work, "plain", [])
    start = dict(np.load(work / "init.npz"))
    moved = max(np.linalg.norm(plain[k] - start[k]) for k in plain)
    failed = moved == 0  # weights that never moved would agree whatever NCCL did
    print(f"plain run: the weights moved {moved:.3e} from the start")
    # Small buckets, so several launch (and some together, as one NCCL group).
    cases = [("mpirun-nccl", ["--comm", "nccl", "--bucket-mb", "0.001"], mpirun),
             ("mpirun-nccl-zero1", ["--comm", "nccl", "--zero", "1", "--bucket-mb", "0.001"],
              mpirun),
             ("alone-nccl-zero1", ["--comm", "nccl", "--zero", "1"], None)]
    for name, flags, launcher in cases:
        got = train(ruche, work, name, flags, launcher)
        same = all(np.array_equal(got[k], plain[k]) for k in plain)
        worst = max(np.linalg.norm(got[k].astype(np.float64) - plain[k])
                    / max(np.linalg.norm(plain[k].astype(np.float64)), 1e-12) for k in plain)
        ok = same or worst <= TOLERANCE
        print(f"{'agree' if ok else 'FAIL: disagree'}: {name} against the plain run: "
              f"{'the same bits' if same else f'worst norm-relative error {worst:.2e}'}")
        failed = failed or not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
