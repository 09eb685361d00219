#!/usr/bin/env python3
"""Reconstruction metrics and the anomaly report against independent numbers: a conv_autoencoder
trained with --train-classes on two of four classes; PyTorch reconstructs the test split from the
run's model.npz, and numpy gives MSE, MAE, PSNR and the ROC AUC (Mann-Whitney, ties counted
half) that `ruche eval --score reconstruction` must report. --train-classes leaves validation and
test whole; the threshold is chosen on validation only (changing the test split leaves it).

usage: autoencoder_metrics.py RUCHE_BINARY WORKDIR
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = sys.argv[1], pathlib.Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def run(*args):
    p = subprocess.run([RUCHE, *map(str, args)], env=ENV, capture_output=True, text=True,
                       timeout=240)
    if p.returncode != 0:
        print(" ".join(map(str, args)), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
    return p


def make(rng, n):
    """Four classes of 1x28x28 images in [0, 1]: a bright blob around the centre of quadrant c (overlapping), plus noise."""
    y = rng.integers(0, 4, n)
    x = 0.1 * rng.random((n, 1, 28, 28))
    yy, xx = np.mgrid[0:28, 0:28]
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        cy, cx = 7 + 14 * r + rng.normal(0, 3), 7 + 14 * q + rng.normal(0, 3)
        x[i, 0] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0)
    return x.clip(0, 1).astype(np.float32), y.astype(np.int64)


class ConvAutoencoder(torch.nn.Module):  # as tests/train/autoencoder_torch.py
    def __init__(self, bottleneck):
        super().__init__()
        self.enc1 = torch.nn.Conv2d(1, 16, 3, 2, 1)
        self.enc2 = torch.nn.Conv2d(16, 32, 3, 2, 1)
        self.code = torch.nn.Conv2d(32, bottleneck, 7)
        self.dec1 = torch.nn.ConvTranspose2d(bottleneck, 32, 7)
        self.dec2 = torch.nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1)
        self.dec3 = torch.nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.enc2(torch.relu(self.enc1(x))))
        x = torch.relu(self.dec1(self.code(x)))
        x = torch.nn.functional.interpolate(torch.relu(self.dec2(x)), scale_factor=2)
        return torch.sigmoid(self.dec3(x))


def auc(scores, positive):
    """Mann-Whitney: P(score of a positive > score of a negative), ties counted half."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


rng = np.random.default_rng(1)
x, y = make(rng, 480)
xt, yt = make(rng, 200)
np.savez(WORK / "data.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
out = WORK / "run"
shutil.rmtree(out, ignore_errors=True)
# Adam at a fixed rate learns these blobs in 100 steps (the built-in models' default SGD needs
# many more).
(WORK / "solver.prototxt").write_text(
    'type: "adam" base_lr: 0.003 nesterov: false lr_policy: "fixed" warmup_epochs: 0\n')
p = run("train", "--model", "conv_autoencoder", "--reconstruct", "--data", WORK / "data.npz",
        "--out", out, "--normalize", "none", "--train-classes", "0,1", "--max-steps", 100,
        "--batch-size", 32, "--val-fraction", 0.25, "--no-augment", "--seed", 3,
        "--solver", WORK / "solver.prototxt")
if not check(p.returncode == 0, "conv_autoencoder trains with --train-classes 0,1"):
    sys.exit(1)
# "data: npz, 173 train / 121 val / 200 test samples": training took classes 0 and 1 only.
sizes = next(line for line in p.stdout.splitlines() if line.startswith("data: "))
n_train, n_val = int(sizes.split()[2]), int(sizes.split()[5])
check(n_train < 0.6 * 480 * 0.75, f"--train-classes keeps about half of training ({sizes})")
metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
train_losses = [m["loss"] for m in metrics if m.get("split") == "train"]
check(train_losses[-1] < 0.9 * train_losses[0],
      f"the training loss falls ({train_losses[0]:.4f} -> {train_losses[-1]:.4f})")

report = WORK / "test.json"
p = run("eval", "--weights", out, "--data", WORK / "data.npz", "--split", "test", "--score",
        "reconstruction", "--target-recall", 0.8, "--json", report)
check(p.returncode == 0, "ruche eval --score reconstruction runs")
r = json.loads(report.read_text())
print(p.stdout)

model = ConvAutoencoder(32)
weights = np.load(out / "model.npz")
model.load_state_dict({k: torch.from_numpy(weights[k]) for k in model.state_dict()})
with torch.no_grad():
    recon = model(torch.from_numpy(xt)).numpy().astype(np.float64)
err = recon - xt
per_sample = (err ** 2).reshape(len(xt), -1).mean(1)
mse, mae = float((err ** 2).mean()), float(np.abs(err).mean())
psnr = 10 * np.log10(1.0 / mse)
check(r["samples"] == len(xt), f"--train-classes leaves test whole ({r['samples']} samples)")
check(abs(r["mse"] - mse) <= 1e-4 * mse, f"test MSE {r['mse']:.6g} is numpy's {mse:.6g}")
check(abs(r["mae"] - mae) <= 1e-4 * mae, f"test MAE {r['mae']:.6g} is numpy's {mae:.6g}")
check(abs(r["psnr"] - psnr) <= 1e-3, f"test PSNR {r['psnr']:.4f} dB is numpy's {psnr:.4f}")
positive = ~np.isin(yt, [0, 1])
a = r["anomaly"]
check(a["anomalies"] == positive.sum() and a["normals"] == (~positive).sum(),
      f"anomalies {a['anomalies']} and normals {a['normals']}: classes 2 and 3 against 0 and 1")
ours_auc, numpy_auc = a["roc_auc"], auc(per_sample, positive)
check(ours_auc > 0.7, f"the anomalies reconstruct worse (ROC AUC {ours_auc:.4f} > 0.7)")
check(abs(ours_auc - numpy_auc) < 1e-3, f"ROC AUC {ours_auc:.6f} is numpy's Mann-Whitney "
      f"{numpy_auc:.6f} on PyTorch's per-sample errors")
try:
    from sklearn.metrics import roc_auc_score  # optional: the same number once more
    check(abs(ours_auc - roc_auc_score(positive, per_sample)) < 1e-3, "and sklearn's")
except ImportError:
    print("(sklearn not installed: numpy's Mann-Whitney AUC is the reference)")
th = a.get("threshold", {})
check(th.get("chosen_on") == "val" and th.get("evaluated_on") == "test",
      f"the threshold is chosen on val and counted on test ({th})")

# Validation keeps every class too, though training saw two.
p = run("eval", "--weights", out, "--data", WORK / "data.npz", "--split", "val", "--score",
        "reconstruction", "--json", WORK / "val.json")
v = json.loads((WORK / "val.json").read_text())
check(p.returncode == 0 and v["anomaly"]["anomalies"] > 0 and v["samples"] == n_val,
      f"--train-classes leaves validation whole ({v['samples']} samples, "
      f"{v['anomaly']['anomalies']} anomalous)")

# Another test split: the same threshold (chosen on val), other counts.
xt2, yt2 = make(np.random.default_rng(7), 150)
np.savez(WORK / "data2.npz", x_train=x, y_train=y, x_test=xt2, y_test=yt2)
p = run("eval", "--weights", out, "--data", WORK / "data2.npz", "--split", "test", "--score",
        "reconstruction", "--target-recall", 0.8, "--json", WORK / "test2.json")
th2 = json.loads((WORK / "test2.json").read_text())["anomaly"].get("threshold", {})
check(p.returncode == 0 and th2.get("value") == th.get("value"),
      f"another test split leaves the threshold ({th.get('value')} and {th2.get('value')})")

finish()
