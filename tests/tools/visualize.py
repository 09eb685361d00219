#!/usr/bin/env python3
"""`ruche visualize` on a fashion_cnn (conv, batch norm, ReLU, max pool, dropout, linear)
trained briefly on a small uint8 npz: the class-saliency maps against PyTorch's input gradient of
the same net with the same weights in eval mode (norm-relative error < 1e-4), the inputs
normalised as RUN/preprocess.json says (an edited record is followed, nothing recomputed), the
first layer's filters and every convolution's output against PyTorch's, the PNGs, and
--tensorboard's images in an event file.

usage: visualize.py RUCHE_BINARY WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = os.path.abspath(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def ruche(*args):
    return subprocess.run([RUCHE, *args], capture_output=True, text=True, env=ENV, cwd=WORK)


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-30))


rng = np.random.default_rng(5)
x = rng.integers(0, 256, (300, 1, 12, 12), dtype=np.uint8)
y = rng.integers(0, 3, 300).astype(np.int64)
x[y == 1, :, :6] //= 3  # something to learn
x[y == 2, :, :, :6] //= 3
np.savez(WORK / "img.npz", x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
r = ruche("train", "--model", "fashion_cnn", "--data", "img.npz", "--epochs", "1",
          "--batch-size", "16", "--no-tensorboard", "--out", "run")
check(r.returncode == 0, f"train: exit 0 ({r.stderr.strip()[-300:]})")

r = ruche("visualize", "run", "--data", "img.npz", "--samples", "2", "-o", "vis",
          "--tensorboard")
check(r.returncode == 0, f"visualize: exit 0 ({r.stdout.strip()[-200:]} {r.stderr.strip()[-300:]})")
vis = np.load(WORK / "vis" / "visualize.npz")
meta = json.loads((WORK / "vis" / "visualize.json").read_text())
inputs, saliency, labels = vis["inputs"], vis["saliency"], vis["labels"]
check(inputs.shape == (6, 1, 12, 12) and list(labels) == [0, 0, 1, 1, 2, 2],
      f"2 samples of each of 3 classes ({inputs.shape}, {list(labels)})")
check(meta["split"] == "val" and meta["conv_layers"] == ["conv1", "conv2", "conv3", "conv4"],
      f"val samples, 4 convolutions ({meta['split']}, {meta['conv_layers']})")

# The inputs are the record's normalisation of pixels / 255.
record = json.loads((WORK / "run" / "preprocess.json").read_text())
mean, std = record["mean"][0], record["std"][0]
raw = inputs * std + mean  # back to [0, 1]
check(np.abs(raw * 255 - np.round(raw * 255)).max() < 1e-3,
      f"inputs = (pixels / 255 - {mean:.4f}) / {std:.4f} as preprocess.json says")

# The same net in PyTorch, the same weights (best.npz), eval mode.
w = {k: torch.from_numpy(np.asarray(v)) for k, v in np.load(WORK / "run" / "best.npz").items()}


def net(t, acts=None):
    for block, names in ((1, ("1", "2")), (2, ("3", "4"))):
        for n in names:
            t = F.conv2d(t, w[f"conv{n}.weight"], w.get(f"conv{n}.bias"), padding=1)
            if acts is not None:
                acts.append(t.detach().numpy()[0])
            t = F.batch_norm(t, w[f"bn{n}.running_mean"], w[f"bn{n}.running_var"],
                             w[f"bn{n}.weight"], w[f"bn{n}.bias"], training=False, eps=1e-5)
            t = F.relu(t)
        t = F.max_pool2d(t, 2, 2)
    t = t.flatten(1)
    t = F.relu(F.linear(t, w["fc1.weight"], w["fc1.bias"]))
    return F.linear(t, w["fc2.weight"], w["fc2.bias"])


worst = 0.0
for k in range(len(inputs)):
    t = torch.from_numpy(inputs[k:k + 1].copy()).requires_grad_(True)
    score = net(t)[0, int(labels[k])]
    (grad,) = torch.autograd.grad(score, t)
    worst = max(worst, rel(saliency[k], grad.numpy()[0]))
    pred = int(net(torch.from_numpy(inputs[k:k + 1].copy())).argmax())
    check(pred == int(vis["predicted"][k]), f"sample {k}: predicted class {pred} as PyTorch")
check(worst < 1e-4,
      f"saliency = PyTorch's d score / d input (worst norm-relative error {worst:.2e})")
check(np.abs(saliency).sum() > 0, "the saliency is not zero")
check(np.array_equal(vis["filters"], np.load(WORK / "run" / "best.npz")["conv1.weight"]),
      "the filters are conv1's weights")

# The activations are each convolution's own output (before batch norm) for one sample: conv2's
# is conv2(relu(bn1(conv1's))).
a0 = torch.from_numpy(vis["act_0"][None])
t = F.relu(F.batch_norm(a0, w["bn1.running_mean"], w["bn1.running_var"], w["bn1.weight"],
                        w["bn1.bias"], training=False, eps=1e-5))
a1 = F.conv2d(t, w["conv2.weight"], w.get("conv2.bias"), padding=1).numpy()[0]
check(rel(vis["act_1"], a1) < 1e-5, f"conv2's map = conv2(relu(bn1(conv1's map))) "
      f"({rel(vis['act_1'], a1):.1e})")
check(vis["act_0"].shape == (32, 12, 12) and vis["act_2"].shape == (64, 6, 6),
      f"map shapes {vis['act_0'].shape}, {vis['act_2'].shape}")

for name in ("filters.png", "saliency.png", "activations-conv1.png", "activations-conv4.png"):
    p = WORK / "vis" / name
    check(p.exists() and p.stat().st_size > 1000, f"{name} written")
events = list((WORK / "run").glob("events.out.tfevents.*"))
blob = events[0].read_bytes() if events else b""
check(len(events) == 1 and b"visualize/saliency" in blob and b"\x89PNG" in blob,
      "--tensorboard: an event file in RUN with the images")

# An edited record is what visualize follows (it recomputes nothing).
record["mean"] = [0.0]
record["std"] = [1.0]
(WORK / "run" / "preprocess.json").write_text(json.dumps(record))
r = ruche("visualize", "run", "--data", "img.npz", "--samples", "1", "-o", "vis2")
v2 = np.load(WORK / "vis2" / "visualize.npz")["inputs"]
check(r.returncode == 0 and np.allclose(v2[0], raw[0], atol=1e-6),
      "an edited preprocess.json (mean 0, std 1): the inputs are pixels / 255")

r = ruche("visualize", "nowhere", "-o", "x")
check(r.returncode == 2 and "nowhere" in r.stderr, f"a missing run: exit 2 ({r.stderr.strip()})")

finish()
