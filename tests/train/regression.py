#!/usr/bin/env python3
"""Float targets from an npz y (issue 18): regression and multi-label.

- A linear target y = x A + b [N, 3] (float32): InnerProduct + EuclideanLoss fits it, the loss
  falling at least 100x, on 1 and 2 ranks; metrics.jsonl gives mse and mae and no psnr; `ruche
  eval` reports the MSE and MAE numpy computes from model.npz. L1Loss and SmoothL1Loss train on
  a y of shape [N] (one target per sample).
- Multi-label: y 0/1 [N, 4] with SigmoidCrossEntropyLoss against torch's BCEWithLogitsLoss from
  the same weights on the same batches (SGD with momentum, 1 and 2 ranks, norm-relative 1e-4);
  the per-element accuracy at 0.5 of `ruche eval` equals numpy's.
- A spatial target (y [N, 1, 8, 8] = x) is cropped and flipped with the input: an identity 1x1
  convolution reads zero loss with augmentation on; a flat y [N, 64] is left alone (loss > 0).
- A class loss on a float y, and a float-target loss on class labels, are one-line errors.

usage: regression.py RUCHE_BINARY MPIEXEC WORKDIR
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

RUCHE, MPIEXEC, WORK = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
WORK.mkdir(parents=True, exist_ok=True)
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive",
           OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1")
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe"] if os.geteuid() == 0 else ["--oversubscribe"]


def run(cmd, ranks=1):
    if ranks > 1:
        cmd = [MPIEXEC, *MPI_FLAGS, "-np", str(ranks), *cmd]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        print(" ".join(map(str, cmd)), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
    return p


def net(inputs, outputs, loss, kind="InnerProduct"):
    dims = " ".join(f"dim: {d}" for d in inputs)
    param = (f"inner_product_param {{ num_output: {outputs} }}" if kind == "InnerProduct" else
             f"convolution_param {{ num_output: {outputs} kernel_size: 1 }}")
    return (f'layer {{ name: "data" type: "Input" top: "data" top: "label" '
            f'input_param {{ {dims} }} }}\n'
            f'layer {{ name: "fc" type: "{kind}" bottom: "data" top: "fc" {param} }}\n'
            f'layer {{ name: "loss" type: "{loss}" bottom: "fc" bottom: "label" top: "loss" }}\n')


def solver(path, batch, steps, lr, typ="sgd", extra=""):
    path.write_text(
        f'type: "{typ}" base_lr: {lr} momentum: 0.9 nesterov: false weight_decay: 0\n'
        f'lr_policy: "fixed" warmup_epochs: 0 warmup_steps: 0 max_iter: {steps} display: 1\n'
        f'batch_size: {batch} random_seed: 5 shuffle: false {extra}\n')


def train(name, netText, data, ranks, batch, steps, lr, typ="sgd", extra="", args=()):
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    (WORK / f"{name}.prototxt").write_text(netText)
    solver(WORK / f"{name}.solver", batch, steps, lr, typ, extra)
    return out, run([RUCHE, "train", "--out", str(out), "--data", str(data), "--net",
                     str(WORK / f"{name}.prototxt"), "--solver", str(WORK / f"{name}.solver"),
                     "--normalize", "none", "--threads", "1", *args], ranks)


def records(out, split):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


rng = np.random.default_rng(0)

# ---- a linear target ----
N, D, K = 512, 8, 3
x = rng.standard_normal((N, D)).astype(np.float32)
A = rng.standard_normal((D, K)).astype(np.float32)
b = rng.standard_normal(K).astype(np.float32)
y = (x @ A + b).astype(np.float32)
np.savez(WORK / "linear.npz", x_train=x[:448], y_train=y[:448], x_test=x[448:], y_test=y[448:])
for ranks in (1, 2):
    out, p = train(f"linear-np{ranks}", net([D], K, "EuclideanLoss"), WORK / "linear.npz", ranks,
                   32 // ranks, 300, 0.01, "adam", "val_fraction: 0.125")
    if not check(p.returncode == 0, f"linear regression on {ranks} rank(s) trains"):
        continue
    train_records = records(out, "train")
    first, last = train_records[0]["loss"], train_records[-1]["loss"]
    check(first / max(last, 1e-30) >= 100,
          f"{ranks} rank(s): loss {first:.4g} -> {last:.3g}, down {first / max(last, 1e-30):.0f}x")
    check(all("mse" in r and "mae" in r and "psnr" not in r for r in train_records + records(
        out, "val")), f"{ranks} rank(s): metrics.jsonl gives mse and mae, no psnr")
    check("task: regression (EuclideanLoss)" in p.stdout and "psnr" not in p.stdout,
          f"{ranks} rank(s): the run says regression and prints no psnr")
    w = dict(np.load(out / "model.npz"))
    pred = x[448:] @ w["fc.weight"].T + w["fc.bias"]
    mse, mae = float(((pred - y[448:]) ** 2).mean()), float(np.abs(pred - y[448:]).mean())
    e = run([RUCHE, "eval", "--weights", str(out / "model.npz"), "--data", str(WORK / "linear.npz")])
    report = json.loads((out / "eval-test.json").read_text()) if e.returncode == 0 else {}
    check(e.returncode == 0 and abs(report.get("mse", -1) - mse) <= 1e-4 * mse + 1e-9 and
          abs(report.get("mae", -1) - mae) <= 1e-4 * mae + 1e-9 and "psnr" not in report,
          f"{ranks} rank(s): ruche eval mse {report.get('mse')} mae {report.get('mae')} = numpy's "
          f"{mse:.6g} {mae:.6g}")
    check(e.returncode == 0 and "mse" in e.stdout and "psnr" not in e.stdout,
          f"{ranks} rank(s): ruche eval prints mse and no psnr")

# y of shape [N]: one target per sample, L1 and SmoothL1.
np.savez(WORK / "scalar.npz", x=x, y=y[:, 0].copy())
for loss in ("L1Loss", "SmoothL1Loss"):
    out, p = train(f"scalar-{loss}", net([D], 1, loss), WORK / "scalar.npz", 1, 32, 300, 0.01,
                   "adam")
    if check(p.returncode == 0, f"{loss} on y [N] trains"):
        r = records(out, "train")
        check(r[-1]["mae"] < r[0]["mae"] / 10,
              f"{loss}: mae {r[0]['mae']:.4g} -> {r[-1]['mae']:.3g} (10x down at least)")

# ---- multi-label against torch ----
N, D, K, STEPS, LR = 64, 6, 4, 5, 0.5
x = rng.standard_normal((N, D)).astype(np.float32)
y = (x @ rng.standard_normal((D, K)) > 0).astype(np.float32)
np.savez(WORK / "multilabel.npz", x=x, y=y)
torch.manual_seed(0)
model = torch.nn.Linear(D, K)
start = {"fc.weight": model.weight.detach().clone().numpy(),
         "fc.bias": model.bias.detach().clone().numpy()}
np.savez(WORK / "ml-init.npz", **start)
opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
for step in range(STEPS):
    opt.zero_grad()
    at = 16 * (step % (N // 16))  # in order, epoch after epoch
    xb, yb = torch.from_numpy(x[at:at + 16]), torch.from_numpy(y[at:at + 16])
    torch.nn.functional.binary_cross_entropy_with_logits(model(xb), yb).backward()
    opt.step()
theirs = {"fc.weight": model.weight.detach().numpy(), "fc.bias": model.bias.detach().numpy()}
for ranks in (1, 2):
    out, p = train(f"multilabel-np{ranks}", net([D], K, "SigmoidCrossEntropyLoss"),
                   WORK / "multilabel.npz", ranks, 16 // ranks, STEPS, LR, "sgd",
                   "val_fraction: 0 augment: false",
                   ["--init-weights", str(WORK / "ml-init.npz")])
    if not check(p.returncode == 0, f"multi-label on {ranks} rank(s) trains"):
        continue
    ours = dict(np.load(out / "model.npz"))
    worst = max(np.linalg.norm(ours[k] - v) / np.linalg.norm(v) for k, v in theirs.items())
    check(worst < 1e-4, f"multi-label on {ranks} rank(s): against BCEWithLogitsLoss {worst:.2e}")
    check("acc@0.5" in p.stdout and "multi-label" in p.stdout,
          f"multi-label on {ranks} rank(s): the progress line gives acc@0.5")
# ruche eval on a copy whose test split is the training data.
np.savez(WORK / "multilabel-tt.npz", x_train=x, y_train=y, x_test=x, y_test=y)
e = run([RUCHE, "eval", "--weights", str(WORK / "multilabel-np1" / "model.npz"), "--data",
         str(WORK / "multilabel-tt.npz")])
report = json.loads((WORK / "multilabel-np1" / "eval-test.json").read_text()) if e.returncode == 0 else {}
ours = dict(np.load(WORK / "multilabel-np1" / "model.npz"))
logits = x @ ours["fc.weight"].T + ours["fc.bias"]
acc = float(((1 / (1 + np.exp(-logits)) >= 0.5) == (y >= 0.5)).mean())
check(e.returncode == 0 and abs(report.get("acc", -1) - acc) < 1e-6,
      f"multi-label eval: accuracy at 0.5 {report.get('acc')} = numpy's {acc:.6g}")

# ---- a spatial target follows the input's crop and flip ----
N = 64
x = rng.random((N, 1, 8, 8)).astype(np.float32)
np.savez(WORK / "spatial.npz", x=x, y=x.copy())
np.savez(WORK / "flat.npz", x=x, y=x.reshape(N, 64).copy())
np.savez(WORK / "identity.npz", **{"fc.weight": np.ones((1, 1, 1, 1), np.float32),
                                     "fc.bias": np.zeros(1, np.float32)})
for name, expect_zero in (("spatial", True), ("flat", False)):
    out, p = train(f"aug-{name}", net([1, 8, 8], 1, "EuclideanLoss", "Convolution"),
                   WORK / f"{name}.npz", 1, 16, 8, 1e-20, "sgd", "val_fraction: 0 augment: true",
                   ["--init-weights", str(WORK / "identity.npz")])
    if not check(p.returncode == 0, f"augmented {name} target trains"):
        continue
    worst = max(r["loss"] for r in records(out, "train"))
    check((worst < 1e-12) if expect_zero else (worst > 1e-3),
          f"{name} y: training loss at most {worst:.3g} "
          f"({'cropped and flipped with x' if expect_zero else 'not spatial: left alone'})")

# ---- the wrong pairings are one-line errors ----
out, p = train("softmax-on-float", net([8], 3, "SoftmaxWithLoss"), WORK / "linear.npz", 1, 32, 2,
               0.01)
check(p.returncode == 2 and "regression targets" in p.stderr,
      "SoftmaxWithLoss on a float y: exit 2 saying the y holds regression targets")
np.savez(WORK / "classes.npz", x=x.reshape(N, 64), y=np.arange(N) % 3)
out, p = train("euclidean-on-classes", net([64], 3, "EuclideanLoss"), WORK / "classes.npz", 1,
               16, 2, 0.01)
check(p.returncode == 2 and "float32" in p.stderr,
      "EuclideanLoss on class labels: exit 2 saying what y to give")

# ---- every command on a net without class labels: a regression net and an autoencoder ----
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tools"))
from onnx_export import run_numpy  # noqa: E402  (the numpy ONNX interpreter of that test)
import onnx  # noqa: E402

x = np.load(WORK / "linear.npz")["x_test"]
np.savez(WORK / "ae.npz", x_train=rng.random((64, 1, 28, 28)).astype(np.float32),
         y_train=np.arange(64) % 2, x_test=rng.random((16, 1, 28, 28)).astype(np.float32),
         y_test=np.arange(16) % 2)
ae = WORK / "ae-run"
shutil.rmtree(ae, ignore_errors=True)
p = run([RUCHE, "train", "--model", "conv_autoencoder", "--reconstruct", "--data",
         str(WORK / "ae.npz"), "--max-steps", "2", "--batch-size", "8", "--out", str(ae),
         "--threads", "1"])
check(p.returncode == 0, "a conv_autoencoder trains 2 steps")
events = b"".join(f.read_bytes() for f in ae.glob("events.out.tfevents.*"))
check(b"val/reconstructions" in events and b"\x89PNG" in events,
      "the autoencoder's TensorBoard file holds the val/reconstructions image")
rec = np.load(ae / "reconstructions.npz") if (ae / "reconstructions.npz").exists() else None
check(rec is not None and rec["target"].shape == rec["reconstruction"].shape and
      rec["target"].shape[1:] == (1, 28, 28) and 1 <= rec["target"].shape[0] <= 8,
      "RUN/reconstructions.npz: up to 8 validation targets and their reconstructions")
p = run([RUCHE, "plot", str(ae)])
check(p.returncode == 0 and (ae / "reconstructions.png").exists(),
      "ruche plot draws RUN/reconstructions.png")
for name, run_dir, data in (("regression", WORK / "linear-np1", "linear.npz"),
                            ("autoencoder", ae, "ae.npz")):
    for fmt in ("npz", "onnx"):
        target = WORK / f"{name}-export.{fmt}"
        e = run([RUCHE, "export", "--from", str(run_dir), "--format", fmt, "-o", str(target)])
        check(e.returncode == 0 and target.exists(), f"{name}: ruche export --format {fmt}")
    t = run([RUCHE, "time", "--net", str(run_dir / "net.prototxt"), "--batch-size", "4",
             "--iterations", "2", "--threads", "1"])
    check(t.returncode == 0 and "forward-backward" in t.stdout, f"{name}: ruche time")
    e = run([RUCHE, "eval", "--weights", str(run_dir / "model.npz"), "--data", str(WORK / data)])
    check(e.returncode == 0 and "mse" in e.stdout, f"{name}: ruche eval reports mse")
# The regression model's ONNX output is the prediction (x A' + b on the stored values).
target = WORK / "regression-export.onnx"
if target.exists():
    w = dict(np.load(WORK / "linear-np1" / "model.npz"))
    got = run_numpy(onnx.load(str(target)), x)
    got = next(iter(got.values()))  # the first output: the prediction
    want = x @ w["fc.weight"].T + w["fc.bias"]
    err = float(np.abs(np.asarray(got, np.float64) - want).max())
    check(err < 1e-5, f"regression ONNX output = x W^T + b ({err:.2e})")

finish()
