#!/usr/bin/env python3
"""A few training steps on the GPU and on the CPU, from the same weights and the same batches
(shuffled, augmented, with dropout: the counter-based generator gives both devices the same
numbers), end with the same weights: norm-relative 1e-3 with --precision fp32 (strict, no TF32);
with --precision bf16 and fp16 (autocast: 16-bit activations and gradients, fp32 master weights)
within 3e-2, the error of 16-bit gradients over 8 steps (bf16 keeps 8 bits of mantissa: each
gradient is off by up to 2^-8 relative, and the weights move ~10% in these steps); 16-bit runs
plan channels-last (nhwc) activations, and bf16 runs once more kept NCHW (RUCHE_LAYOUT_PLAN=0), so
a failure says whether the layout is to blame.
Every op a small CNN needs runs: convolution with and without bias, batch norm, ReLU, max and
average pooling, dropout, a residual add, linear layers, softmax cross-entropy, SGD with Nesterov
momentum and weight decay, gradient clipping. Every fp32 step's loss and accuracy, counted on the
device and read with the step's one wait, match the CPU's; every GPU step waits for the device once
(metrics.jsonl's syncs_per_step is 1); a label out of range still stops the run with the CPU's
words, found on the device. Exits 77 (ctest's skip) without a CUDA device.

usage: train_equivalence.py RUCHE_BINARY WORKDIR
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np

NET = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" }
layer { name: "relu1" type: "ReLU" bottom: "bn1" top: "bn1" }
layer { name: "conv2" type: "Convolution" bottom: "bn1" top: "conv2"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "join" type: "Eltwise" bottom: "conv2" bottom: "bn1" top: "join" }
layer { name: "pool1" type: "Pooling" bottom: "join" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool2" type: "Pooling" bottom: "pool1" top: "pool2"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool2" top: "fc1"
        inner_product_param { num_output: 16 } }
layer { name: "relu2" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "drop" type: "Dropout" bottom: "fc1" top: "fc1" dropout_param { dropout_ratio: 0.25 } }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
        inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
"""

SOLVER = """
type: "sgd" base_lr: 0.05 momentum: 0.9 nesterov: true weight_decay: 0.0005 lr_policy: "fixed"
clip_grad_norm: 5 batch_size: 32 max_iter: 8 display: 1 random_seed: 7
val_fraction: 0 shuffle: true augment: true
"""


def has_cuda(ruche: str) -> bool:
    out = subprocess.run([ruche, "devices"], capture_output=True, text=True)
    print(out.stdout.strip())
    return out.returncode == 0 and "no CUDA device" not in out.stdout


def train(ruche: str, work: pathlib.Path, device: str, precision: str = "fp32",
          data: str = "data.npz", nchw: bool = False) -> subprocess.CompletedProcess:
    run = work / f"run-{device}-{precision}{'-nchw' if nchw else ''}"
    env = dict(os.environ, RUCHE_LAYOUT_PLAN="0") if nchw else None
    shutil.rmtree(run, ignore_errors=True)  # a fresh run, not a resume of the last one
    return subprocess.run([ruche, "train", "--net", str(work / "net.prototxt"), "--solver",
                           str(work / "solver.prototxt"), "--data", str(work / data),
                           "--init-weights", str(work / "init.npz"), "--out", str(run),
                           "--device", device, "--precision", precision, "--no-checkpoint"],
                          capture_output=True, text=True, env=env)


def trained(ruche: str, work: pathlib.Path, device: str, precision: str = "fp32",
            nchw: bool = False):
    """The run's final weights and its metrics.jsonl train records."""
    done = train(ruche, work, device, precision, nchw=nchw)
    if done.returncode != 0:
        raise SystemExit(f"ruche train --device {device} --precision {precision} failed:\n"
                         f"{done.stderr}")
    run = work / f"run-{device}-{precision}{'-nchw' if nchw else ''}"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return dict(np.load(run / "model.npz")), [r for r in records if r.get("split") == "train"]


def check_steps(cpu_steps: list, gpu_steps: list) -> bool:
    """Each fp32 GPU step: one wait for the device, and the CPU's loss and accuracy."""
    ok = len(cpu_steps) == len(gpu_steps) > 0
    for c, g in zip(cpu_steps, gpu_steps):
        same = (abs(g["loss"] - c["loss"]) <= 1e-3 * max(1.0, abs(c["loss"])) and
                abs(g["acc"] - c["acc"]) <= 1.5 / 32)  # one sample's argmax may flip
        one_wait = g["syncs_per_step"] == 1
        print(f"step {g['step']}: loss {g['loss']:.6f} (cpu {c['loss']:.6f}), acc {g['acc']:.4f} "
              f"(cpu {c['acc']:.4f}), syncs_per_step {g['syncs_per_step']}"
              f"{'' if same and one_wait else '  FAIL'}")
        ok = ok and same and one_wait
    return ok


def main() -> int:
    ruche, work = sys.argv[1], pathlib.Path(sys.argv[2])
    if not has_cuda(ruche):
        print("skipped: no CUDA device")
        return 77
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.random((320, 1, 12, 12), dtype=np.float32)
    y = rng.integers(0, 4, 320).astype(np.int32)
    np.savez(work / "data.npz", x=x, y=y)
    (work / "net.prototxt").write_text(NET)
    (work / "solver.prototxt").write_text(SOLVER)
    # The starting weights: ruche's own initialisation, written by a zero-step run.
    init_run = work / "run-init"
    shutil.rmtree(init_run, ignore_errors=True)
    subprocess.run([ruche, "train", "--net", str(work / "net.prototxt"), "--solver",
                    str(work / "solver.prototxt"), "--data", str(work / "data.npz"),
                    "--out", str(init_run), "--max-steps", "1", "--lr", "0", "--no-checkpoint"],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.copy(init_run / "model.npz", work / "init.npz")

    cpu, cpu_steps = trained(ruche, work, "cpu")
    start = dict(np.load(work / "init.npz"))
    failed = False
    for precision, tolerance, nchw in (("fp32", 1e-3, False), ("bf16", 3e-2, False),
                                       ("bf16", 3e-2, True), ("fp16", 3e-2, False)):
        gpu, gpu_steps = trained(ruche, work, "cuda", precision, nchw)
        if precision == "fp32":
            print("--- cuda fp32 steps against the cpu's")
            failed = failed or not check_steps(cpu_steps, gpu_steps)
        worst = 0.0
        print(f"--- cuda --precision {precision}{' kept NCHW' if nchw else ''} against the cpu")
        for name, expected in cpu.items():
            a, b = gpu[name].astype(np.float64), expected.astype(np.float64)
            err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
            moved = np.linalg.norm(b - start[name]) / max(np.linalg.norm(b), 1e-12)
            print(f"{name:24s} norm-relative error {err:.2e} (moved {moved:.2e} from the start)")
            worst = max(worst, err)
        verdict = "agree" if worst <= tolerance else "FAIL: disagree"
        print(f"{verdict}: {precision} worst norm-relative error {worst:.2e} (tolerance {tolerance})")
        failed = failed or worst > tolerance
    # Labels out of range, one in every batch: the device finds them, the step's read-back raises
    # the first.
    y[::10] = 9
    np.savez(work / "bad_label.npz", x=x, y=y)
    for device in ("cpu", "cuda"):
        done = train(ruche, work, device, data="bad_label.npz")
        said = "label 9 at index" in done.stderr and "out of range for 4 classes" in done.stderr
        print(f"bad label on {device}: exit {done.returncode}, "
              f"{done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else 'nothing said'}")
        failed = failed or done.returncode == 0 or not said
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
