#!/usr/bin/env python3
"""--optimizer on the built-in recipe (issue 18's usability bug): the default solver is SGD with
Nesterov momentum; choosing adam, adamw or rmsprop by flag drops Nesterov (rmsprop also the
recipe's momentum 0.9, PyTorch's default being 0), --no-nesterov turns it off for SGD, and
--nesterov with adam or with --no-nesterov stays a one-line error.

usage: optimizer_flags.py RUCHE_BINARY WORKDIR
"""
import os
import pathlib
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = sys.argv[1], pathlib.Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)


def train(name, *flags):
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = [RUCHE, "train", "--data", "synthetic", "--synthetic-shape", "1,8,8", "--model", "mlp",
           "--max-steps", "2", "--batch-size", "8", "--threads", "1", "--out", str(out), *flags]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    solver = (out / "solver.prototxt").read_text() if (out / "solver.prototxt").exists() else ""
    return p, solver


for opt in ("adam", "adamw", "rmsprop"):
    p, solver = train(opt, "--optimizer", opt)
    check(p.returncode == 0 and "nesterov: true" not in solver,
          f"--optimizer {opt} alone trains, without nesterov (exit {p.returncode} "
          f"{p.stderr.strip()[-200:]})")
    if opt == "rmsprop":
        check("momentum" not in solver, "--optimizer rmsprop drops the recipe's momentum 0.9")
p, solver = train("rmsprop-momentum", "--optimizer", "rmsprop", "--momentum", "0.5")
check(p.returncode == 0 and "momentum: 0.5" in solver, "--optimizer rmsprop --momentum 0.5 keeps it")
p, solver = train("sgd")
check(p.returncode == 0 and "nesterov: true" in solver, "the default recipe keeps nesterov")
p, solver = train("sgd-plain", "--no-nesterov")
check(p.returncode == 0 and "nesterov: true" not in solver, "--no-nesterov turns it off")
p, solver = train("lars", "--optimizer", "lars")
check(p.returncode == 0 and "nesterov: true" in solver, "--optimizer lars keeps nesterov")
p, _ = train("adam-nesterov", "--optimizer", "adam", "--nesterov")
check(p.returncode == 2 and "nesterov applies to sgd and lars" in p.stderr,
      "--optimizer adam --nesterov: exit 2, nesterov applies to sgd and lars")
p, _ = train("both", "--nesterov", "--no-nesterov")
check(p.returncode == 2 and "not both" in p.stderr, "--nesterov --no-nesterov: exit 2")

finish()
