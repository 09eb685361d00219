"""What the end-to-end data-parallel tests share (data_parallel.py, checkpoint.py): a small
learnable npz dataset, small nets, running `mpirun -np N ruche train`, comparing weights."""
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, failures, finish  # noqa: E402,F401  (tests/support/checks.py; the dp scripts take them from here)

# usage of every script here: SCRIPT RUCHE_BINARY MPIEXEC WORKDIR [CASE ...]
RUCHE, MPIEXEC, WORK = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
ONLY = set(sys.argv[4:])
WORK.mkdir(parents=True, exist_ok=True)

# No dropout (its masks are per rank), no batch norm unless asked (its statistics are per rank).
NET = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } %(frozen)s }
%(bn)s
layer { name: "relu1" type: "ReLU" bottom: "%(act)s" top: "%(act)s" }
layer { name: "pool1" type: "Pooling" bottom: "%(act)s" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool1" top: "fc1"
        inner_product_param { num_output: 16 } }
layer { name: "relu2" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
        inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
"""
BN = 'layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" }'

ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive",
           OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1")
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe"] if os.geteuid() == 0 else ["--oversubscribe"]


def write_data(path, n_train, n_test, seed=3):
    """Four learnable classes of 1x12x12 images: a class-dependent bright quadrant plus noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(0, 0.5, (n, 1, 12, 12)).astype(np.float32)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 0, r * 6:(r + 1) * 6, q * 6:(q + 1) * 6] += 1.0
        return x, y.astype(np.int64)

    x, y = make(n_train)
    xt, yt = make(n_test)
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


def write_net(name, bn=False, frozen=False):
    path = WORK / name
    path.write_text(NET % {"bn": BN if bn else "", "act": "bn1" if bn else "conv1",
                           "frozen": 'param { lr_mult: 0 } param { lr_mult: 0 }' if frozen
                           else ""})
    return path


def train(ranks, out, args, env=None, timeout=240):
    """Runs ruche train on `ranks` ranks (mpirun even for 1, as users do); returns the result.
    The run directory starts empty unless the run resumes."""
    if "--resume" not in args:
        shutil.rmtree(WORK / out, ignore_errors=True)
    cmd = [MPIEXEC, *MPI_FLAGS, "-np", str(ranks), RUCHE, "train", "--out", str(WORK / out), *args]
    start = time.monotonic()
    p = subprocess.run(cmd, env=dict(ENV, **(env or {})), capture_output=True, text=True,
                       timeout=timeout)
    p.seconds = time.monotonic() - start
    if p.returncode != 0 and not (env or {}).get("RUCHE_FAULT"):
        print(" ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
    return p


def weights(out, name="model.npz"):
    z = np.load(WORK / out / name)
    return {k: z[k] for k in z.files}


def rel(a, b):
    """Norm-relative difference over every tensor of two state dicts."""
    num = sum(float(np.sum((a[k].astype(np.float64) - b[k]) ** 2)) for k in b)
    den = sum(float(np.sum(b[k].astype(np.float64) ** 2)) for k in b)
    return (num / den) ** 0.5


def same_bits(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def want(case):
    return not ONLY or case in ONLY




def flags(common, **changes):
    """`common` flags with some changed (batch_size=16 -> --batch-size 16; True: a switch)."""
    d = dict(common)
    d.update({"--" + k.replace("_", "-"): v for k, v in changes.items()})
    out = []
    for k, v in d.items():
        out += [k] if v is True else [k, str(v)]
    return out
