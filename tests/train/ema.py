#!/usr/bin/env python3
"""--ema DECAY end to end: the average in RUN/ema.npz is decay * ema + (1 - decay) * w after each
step from the initial weights (recomputed in numpy from the weights of runs 1, 2, 3 steps long),
for the mlp and for a net with batch norm, whose running_mean and running_var are averaged the
same way and whose num_batches_tracked is copied from the last step's; it is validated beside the
raw weights (ema_loss, ema_acc in metrics.jsonl), ema.npz loads with --init-weights, and a run
crashed mid-way and resumed from its checkpoint ends with the same ema.npz, bit for bit, as one
that never stopped.

usage: ema.py RUCHE_BINARY WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = os.path.abspath(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
ENV = dict(os.environ, OMP_NUM_THREADS="1")
DECAY = np.float32(0.9)


# trainer_test's problem: the class sets the mean brightness of an 8x8 image.
rng = np.random.default_rng(1)
y = (np.arange(240) % 3).astype(np.int32)
x = (rng.uniform(0, 0.5, (240, 1, 8, 8)) + 0.25 * y[:, None, None, None]).astype(np.float32)
np.savez(WORK / "data.npz", x_train=x, y_train=y, x_test=x[:60], y_test=y[:60])
# A fixed rate: a run of k steps is the first k steps of a longer one.
COMMON = ["--data", str(WORK / "data.npz"), "--batch-size", "16",
          "--lr", "0.05", "--lr-policy", "fixed", "--warmup-epochs", "0", "--seed", "3",
          "--val-fraction", "0.2", "--log-every", "1"]


def train(out, *more, env=ENV):
    r = subprocess.run([RUCHE, "train", *COMMON, "--out", str(WORK / out), *more],
                       capture_output=True, text=True, env=env)
    if r.returncode not in (0, 137) and "crash" not in out:
        print(r.stdout[-2000:], r.stderr[-2000:])
    return r


def npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# A small conv net with batch norm, so the average covers running statistics too.
BN_NET = WORK / "bn_net.prototxt"
BN_NET.write_text("""
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" }
layer { name: "relu1" type: "ReLU" bottom: "bn1" top: "bn1" }
layer { name: "fc1" type: "InnerProduct" bottom: "bn1" top: "fc1"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc1" bottom: "label" top: "loss" }
""")


def is_counter(name):
    return name.endswith(".num_batches_tracked")


def check_recurrence(tag, *net):
    """Runs of 1, 2, 3 steps from one set of initial weights; ema.npz against numpy."""
    start = train(f"{tag}_start", *net, "--max-steps", "1", "--no-checkpoint")
    check(start.returncode == 0, f"{tag}: a one-step run gives the initial weights")
    init = str(WORK / f"{tag}_start/model.npz")
    for k in (1, 2, 3):
        r = train(f"{tag}_steps{k}", *net, "--init-weights", init, "--max-steps", str(k),
                  "--no-checkpoint", "--ema", str(DECAY))
        check(r.returncode == 0 and (WORK / f"{tag}_steps{k}/ema.npz").is_file(),
              f"{tag}: {k} steps with --ema write model.npz and ema.npz")
    ema = npz(init)
    for k in (1, 2, 3):
        w = npz(WORK / f"{tag}_steps{k}/model.npz")
        ema = {n: w[n] if is_counter(n) else DECAY * ema[n] + (np.float32(1) - DECAY) * w[n]
               for n in ema}
    got = npz(WORK / f"{tag}_steps3/ema.npz")
    floats = [n for n in ema if not is_counter(n)]
    worst = max(np.linalg.norm(got[n] - ema[n]) / max(np.linalg.norm(ema[n]), 1e-12)
                for n in floats)
    check(set(got) == set(ema) and worst < 1e-6,
          f"{tag}: ema.npz is the numpy recurrence over the 3 steps' weights "
          f"(rel {worst:.1e} < 1e-6)")
    w3 = npz(WORK / f"{tag}_steps3/model.npz")
    check(any(np.abs(got[n] - w3[n]).max() > 1e-4 for n in floats),
          f"{tag}: the average is not the last weights")
    return npz(init), got, w3


check_recurrence("mlp", "--model", "mlp")
init, got, w3 = check_recurrence("bn", "--net", str(BN_NET))
stats = [n for n in got if n.endswith((".running_mean", ".running_var"))]
check(len(stats) == 2 and all(np.abs(got[n] - w3[n]).max() > 1e-6 and
                              np.abs(got[n] - init[n]).max() > 1e-6 for n in stats),
      f"bn: the running statistics are averaged, neither the last nor the initial ones {stats}")
counts = [n for n in got if is_counter(n)]
check(len(counts) == 1 and all(got[n].dtype == np.int64 and got[n] == w3[n] == init[n] + 3
                               for n in counts),
      "bn: num_batches_tracked is the last step's count (initial + 3), not averaged: "
      + ", ".join(f"{n}={got[n]} vs {w3[n]}" for n in counts))

metrics = (WORK / "mlp_steps3/metrics.jsonl").read_text().splitlines()
records = [json.loads(line) for line in metrics]
val = [r for r in records if r["split"] == "val"]
check(bool(val) and all("ema_loss" in r and 0 <= r["ema_acc"] <= 1 for r in val),
      "validation records carry ema_loss and ema_acc")
r = train("from_ema", "--model", "mlp", "--init-weights", str(WORK / "mlp_steps3/ema.npz"),
          "--max-steps", "1", "--no-checkpoint")
check(r.returncode == 0 and "loaded" in r.stdout, "ema.npz loads as --init-weights")

# Exact resume: 30 steps (two and a half epochs) straight, against a crash at step 17 resumed.
common = ["--model", "mlp", "--max-steps", "30", "--ema", "0.8", "--checkpoint-every-steps", "5"]
straight = train("straight", *common)
crash_env = dict(ENV, RUCHE_FAULT="crash_at_step:17")
crashed = train("resumed", *common, env=crash_env)
check(crashed.returncode != 0 and not (WORK / "resumed/ema.npz").exists(),
      f"the injected crash stops the run (exit {crashed.returncode})")
resumed = train("resumed", *common, "--resume", "auto")
check(straight.returncode == 0 and resumed.returncode == 0 and "resum" in resumed.stdout,
      "the crashed run resumes from its checkpoint")
a, b = npz(WORK / "straight/ema.npz"), npz(WORK / "resumed/ema.npz")
check(set(a) == set(b) and all(np.array_equal(a[n], b[n]) for n in a),
      "the resumed run's ema.npz equals the uninterrupted run's, bit for bit")
a, b = npz(WORK / "straight/model.npz"), npz(WORK / "resumed/model.npz")
check(all(np.array_equal(a[n], b[n]) for n in a), "and so do the raw weights")

finish()
