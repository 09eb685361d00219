#!/usr/bin/env python3
"""`ruche compare` on run directories with known metrics: every number of the table (parameters
counted from model.npz without batch-norm buffers, best validation accuracy and its loss, test
accuracy, epochs to the best, wall time, median img/s), seeded configurations as mean ± sample
std, and Welch's t-test against scipy.stats.ttest_ind(equal_var=False) (t, df, p; verdict at
95%); compare.json and compare.png; bad input. Then `ruche train --seeds 2` for real: two whole
run directories with seeds 1 and 2, one resumed on its own, compared as one configuration.

usage: compare.py RUCHE_BINARY WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = os.path.abspath(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def ruche(*args):
    return subprocess.run([RUCHE, *args], capture_output=True, text=True, env=ENV, cwd=WORK)


def fake_run(path, val_accs, val_losses, speeds, wall, test_acc=None, params=None):
    path.mkdir(parents=True)
    lines = []
    for e, (a, l) in enumerate(zip(val_accs, val_losses), 1):
        lines.append({"split": "train", "epoch": e, "step": 10 * e, "loss": 1.0, "acc": 0.5,
                      "lr": 0.1, "img_per_s": speeds[e - 1], "time_s": wall * e / len(val_accs)})
        lines.append({"split": "val", "epoch": e, "step": 10 * e, "loss": l, "acc": a,
                      "time_s": wall * e / len(val_accs)})
    if test_acc is not None:
        lines.append({"split": "test", "step": 10 * len(val_accs), "loss": 0.3, "acc": test_acc})
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    if params:
        np.savez(path / "model.npz", **params)


# Two single runs with every number known.
fake_run(WORK / "cnn", [0.80, 0.91, 0.90], [0.5, 0.3, 0.35], [1000, 1200, 1100], 30.0,
         test_acc=0.905,
         params={"conv1.weight": np.zeros((8, 1, 3, 3), np.float32),
                 "conv1.bias": np.zeros(8, np.float32), "bn1.weight": np.ones(8, np.float32),
                 "bn1.bias": np.zeros(8, np.float32), "bn1.running_mean": np.zeros(8, np.float32),
                 "bn1.running_var": np.ones(8, np.float32),
                 "bn1.num_batches_tracked": np.zeros((), np.int64),
                 "fc.weight": np.zeros((10, 32), np.float32)})
fake_run(WORK / "mlp", [0.70, 0.75], [0.8, 0.7], [5000, 7000], 12.5,
         params={"fc1.weight": np.zeros((20, 784), np.float32),
                 "fc1.bias": np.zeros(20, np.float32)})
r = ruche("compare", "cnn", "mlp", "-o", "out")
check(r.returncode == 0, f"compare two runs: exit 0 ({r.stderr.strip()[-300:]})")
rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.strip()}
cnn, mlp = rows.get("cnn", []), rows.get("mlp", [])
# run, seeds, params, best val acc %, val loss, test acc %, epochs to best, wall s, img/s
check(cnn[1:] == ["-", "416", "91.00", "0.3000", "90.50", "2.0", "30.0", "1100"],
      f"cnn's row: 416 params (72+8+8+8+320, no buffers), 91.00, 0.3000, 90.50, 2.0, 30.0, 1100 "
      f"({cnn})")
check(mlp[1:] == ["-", "15700", "75.00", "0.7000", "-", "2.0", "12.5", "6000"],
      f"mlp's row: no test accuracy, median img/s 6000 ({mlp})")
check(not any("Welch" in line for line in r.stdout.splitlines()),
      "single runs: no t-test (no spread to test against)")
report = json.loads((WORK / "out" / "compare.json").read_text())
check([c["name"] for c in report["configs"]] == ["cnn", "mlp"], "compare.json lists both")
check((WORK / "out" / "compare.png").stat().st_size > 1000, "compare.png written")

# Seeded configurations: A and B close (not distinguishable), C far above (distinguishable).
SEEDS = {"A": [0.901, 0.912, 0.897], "B": [0.905, 0.899, 0.915], "C": [0.951, 0.955, 0.949]}
for name, accs in SEEDS.items():
    for k, acc in enumerate(accs, 1):
        fake_run(WORK / name / f"seed-{k}", [acc - 0.05, acc], [0.5, 0.3 + k / 100],
                 [900, 1000 + k], 10.0 + k)
r = ruche("compare", "A", "B", "C", "-o", "seeded")
check(r.returncode == 0, f"compare seeded: exit 0 ({r.stderr.strip()[-300:]})")
report = json.loads((WORK / "seeded" / "compare.json").read_text())
pairs = {(p["a"], p["b"]): p for p in report["pairs"]}
for a, b in (("A", "B"), ("A", "C"), ("B", "C")):
    ref = stats.ttest_ind(SEEDS[a], SEEDS[b], equal_var=False)
    va, vb = np.var(SEEDS[a], ddof=1) / 3, np.var(SEEDS[b], ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    p = pairs.get((a, b), {})
    check(abs(p.get("t", 0) - ref.statistic) < 1e-9 * max(1, abs(ref.statistic)) and
          abs(p.get("p", 0) - ref.pvalue) < 1e-9 and abs(p.get("df", 0) - df) < 1e-9,
          f"{a} vs {b}: t {p.get('t')} p {p.get('p')} df {p.get('df')} = scipy's "
          f"t {ref.statistic:.12g} p {ref.pvalue:.12g} df {df:.12g}")
    check(p.get("distinguishable") == (ref.pvalue < 0.05),
          f"{a} vs {b}: distinguishable = p < 0.05 ({ref.pvalue:.4f})")
lines = r.stdout.splitlines()
check(any(line.startswith("A vs B") and "not distinguishable at 95%" in line for line in lines),
      "A vs B said not distinguishable")
check(any(line.startswith("A vs C") and line.rstrip().endswith("distinguishable at 95%") and
          "not" not in line for line in lines), "A vs C said distinguishable")
row = next(line.split() for line in lines if line.startswith("A "))
mean, std = np.mean(SEEDS["A"]) * 100, np.std(SEEDS["A"], ddof=1) * 100
check(row[1] == "3" and row[3] == f"{mean:.2f}" and row[4] == "±" and row[5] == f"{std:.2f}",
      f"A's best val acc as mean ± std over 3 seeds {mean:.2f} ± {std:.2f} ({row})")

for args, says in ((["nowhere"], "nowhere"), (["out"], "neither a run directory")):
    r = ruche("compare", *args)
    check(r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1,
          f"compare {' '.join(args)}: exit 2, one line naming {says!r} ({r.stderr.strip()})")

# ruche train --seeds 2: two whole runs, seeds 1 and 2, each resumable on its own.
rng = np.random.default_rng(3)
x = rng.normal(size=(120, 12)).astype(np.float32)
y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
np.savez(WORK / "vec.npz", x=x, y=y)
train = ["train", "--model", "mlp", "--data", "vec.npz", "--epochs", "2", "--batch-size", "20",
         "--no-tensorboard", "--out", "seeds", "--seeds", "2"]
r = ruche(*train)
check(r.returncode == 0, f"train --seeds 2: exit 0 ({r.stderr.strip()[-300:]})")
for k in (1, 2):
    solver = (WORK / "seeds" / f"seed-{k}" / "solver.prototxt")
    check(solver.exists() and f"random_seed: {k}" in solver.read_text(),
          f"seed-{k}: a run directory trained with seed {k}")
    check((WORK / "seeds" / f"seed-{k}" / "model.npz").exists(), f"seed-{k}: model.npz")
r = ruche(*train, "--resume", "auto")
check(r.returncode == 0, f"train --seeds 2 --resume auto: exit 0 ({r.stderr.strip()[-300:]})")
r = ruche("compare", "seeds")
row = next((line.split() for line in r.stdout.splitlines() if line.startswith("seeds ")), [])
check(r.returncode == 0 and row[1:2] == ["2"], f"compare reads the 2 seeds as one row ({row})")

finish()
