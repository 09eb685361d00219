#!/usr/bin/env python3
"""`ruche plot` and `ruche lr-find` end to end on small npz datasets.

plot: a two-class run, evaluated (eval-test.json, roc-test.csv), drawn as curves.png,
confusion.png and roc.png (PNG signature, size, pixel dimensions); bad input exits 2 in one line.
lr-find: on trainer_test's three-class problem, the points follow the schedule and fastai's
debiased smoothing, the stop is the 4x divergence rule, the suggestion lies in a sane range, the
JSON and CSV agree, and nothing but the three files is written.

usage: plot_lr_find.py RUCHE_BINARY WORKDIR
"""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = os.path.abspath(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
ENV = dict(os.environ, RUCHE_PYTHON=sys.executable, OMP_NUM_THREADS="1")


def ruche(*args, env=ENV):
    return subprocess.run([RUCHE, *args], capture_output=True, text=True, env=env, cwd=WORK)


def brightness_data(path, classes, n=240):
    # trainer_test's problem: the class sets the mean brightness of an 8x8 image.
    rng = np.random.default_rng(1)
    y = (np.arange(n) % classes).astype(np.int32)
    x = (rng.uniform(0, 0.5, (n, 1, 8, 8)) + 0.25 * y[:, None, None, None]).astype(np.float32)
    np.savez(path, x_train=x, y_train=y, x_test=x[:60], y_test=y[:60])
    return str(path)


def png_ok(path, min_width):
    if not path.is_file():
        return False
    head = path.read_bytes()[:8]
    with Image.open(path) as image:
        width = image.size[0]
    return head == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000 and width >= min_width


# ---- plot ----
binary = brightness_data(WORK / "binary.npz", 2)
t = ruche("train", "--model", "mlp", "--data", binary, "--out", "run", "--batch-size", "16",
          "--epochs", "3", "--log-every", "3", "--val-fraction", "0.2", "--no-checkpoint")
check(t.returncode == 0, f"a small two-class run trains (exit {t.returncode}) {t.stderr[-300:]}")
e = ruche("eval", "--weights", "run/model.npz", "--data", binary, "--split", "test")
check(e.returncode == 0 and (WORK / "run/roc-test.csv").is_file(),
      f"ruche eval writes eval-test.json and roc-test.csv for two classes {e.stderr[-300:]}")
p = ruche("plot", "run", "-o", "figures/curves.png")
check(p.returncode == 0, f"ruche plot exits 0 {p.stderr[-300:]}")
for name, width in (("curves.png", 1200), ("confusion.png", 400), ("roc.png", 400)):
    check(png_ok(WORK / "figures" / name, width), f"{name} is a PNG of a report's size")

bad = ruche("plot", "nowhere")
check(bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nowhere" in bad.stderr,
      f"a missing run directory: exit 2, one line naming it ({bad.stderr.strip()})")
(WORK / "broken").mkdir()
(WORK / "broken/metrics.jsonl").write_text('{"split": "train", "step": 1\n')
bad = ruche("plot", "broken")
check(bad.returncode == 2 and "metrics.jsonl:1" in bad.stderr,
      f"a corrupt metrics.jsonl: exit 2, naming the line ({bad.stderr.strip()})")
no_mpl = ruche("plot", "run", env=dict(ENV, RUCHE_PYTHON="/bin/false"))
check(no_mpl.returncode == 2 and "matplotlib" in no_mpl.stderr,
      f"a python without matplotlib: a clear error ({no_mpl.stderr.strip()})")

# ---- lr-find ----
three = brightness_data(WORK / "three.npz", 3)
f = ruche("lr-find", "--model", "mlp", "--data", three, "--batch-size", "16", "-o", "lr")
check(f.returncode == 0, f"ruche lr-find exits 0 {f.stderr[-300:]}")
check(sorted(os.listdir(WORK / "lr")) == ["lr_find.csv", "lr_find.json", "lr_find.png"],
      f"lr-find writes its three files and nothing else: {sorted(os.listdir(WORK / 'lr'))}")
check(png_ok(WORK / "lr/lr_find.png", 600), "lr_find.png is a PNG")
result = json.loads((WORK / "lr/lr_find.json").read_text())
points = result["points"]
lrs = np.array([q["lr"] for q in points])
want_lrs = 1e-7 * (10 / 1e-7) ** (np.arange(len(points)) / 99)
check(np.allclose(lrs, want_lrs, rtol=1e-9), "the lr grows exponentially from 1e-7 to 10 in 100")
loss = np.array([q["loss"] for q in points])
avg, smoothed = 0.0, []
for i, value in enumerate(loss):
    avg = 0.98 * avg + 0.02 * value
    smoothed.append(avg / (1 - 0.98 ** (i + 1)))
got = np.array([q["smoothed_loss"] for q in points])
check(np.allclose(got, smoothed, rtol=1e-9), "smoothed_loss is the debiased moving average")
stopped = result["diverged"] and (not math.isfinite(got[-1]) or got[-1] > 4 * got[:-1].min())
check(stopped and len(points) < 100 and all(got[:-1] <= 4 * np.minimum.accumulate(got[:-1])),
      f"it stops at the first smoothed loss past 4x the best ({len(points)} steps)")
suggested = result["suggested_lr"]
check(1e-4 <= suggested <= 1 and result["suggested_by"] in ("steepest descent", "minimum / 10"),
      f"suggested lr {suggested:.3g} ({result['suggested_by']}) lies in [1e-4, 1]")
check(suggested <= result["min_loss_lr"], "the suggestion is not past the minimum")
check(f"suggested lr {suggested:.3g}" in f.stdout, "the suggestion is printed")
with open(WORK / "lr/lr_find.csv") as fh:
    rows = list(csv.DictReader(fh))
check(len(rows) == len(points) and
      all(abs(float(r["lr"]) / q["lr"] - 1) < 1e-6 for r, q in zip(rows, points)),
      "the CSV holds the JSON's points")
bad = ruche("lr-find", "--model", "mlp", "--data", three, "--start-lr", "1", "--end-lr", "0.1")
check(bad.returncode == 2 and "--start-lr" in bad.stderr, "a reversed range is a clear error")

finish()
