#!/usr/bin/env python3
"""PyTorch as the oracle of reconstruction training: ruche and torch train the same autoencoder
(Convolution, Deconvolution with stride 2 and output_padding, Upsample, Sigmoid) from the same
weights on the same batches, the target being the input itself (--reconstruct), and must end
with the same weights (norm-relative 1e-4), on 1 and 2 ranks.

Cases: the built-in conv_autoencoder with EuclideanLoss (torch's MSELoss), and a small prototxt
autoencoder whose logits meet SigmoidCrossEntropyLoss (torch's BCEWithLogitsLoss: sigmoid + BCE),
when that layer is registered.

usage: autoencoder_torch.py RUCHE_BINARY MPIEXEC WORKDIR
"""
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
STEPS = int(os.environ.get("AE_STEPS", "5"))
GLOBAL_BATCH, LR, MOMENTUM = 16, float(os.environ.get("AE_LR", "0.5")), 0.9


class ConvAutoencoder(torch.nn.Module):
    """ruche's conv_autoencoder for 1x28x28 (engine/models/models.h), state_dict names alike."""

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


BCE_NET = """
layer { name: "data" type: "Input" top: "data" top: "label" input_param { dim: 1 dim: 28 dim: 28 } }
layer { name: "enc1" type: "Convolution" bottom: "data" top: "enc1"
        convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "enc1" top: "enc1" }
layer { name: "dec1" type: "Deconvolution" bottom: "enc1" top: "dec1"
        convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 output_padding: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "dec1" top: "dec1" }
layer { name: "pool" type: "Pooling" bottom: "dec1" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Upsample" bottom: "pool" top: "up" upsample_param { scale_factor: 2 } }
layer { name: "dec2" type: "Convolution" bottom: "up" top: "dec2"
        convolution_param { num_output: 1 kernel_size: 3 pad: 1 } }
layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "dec2" bottom: "label" top: "loss" }
"""


class BceNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = torch.nn.Conv2d(1, 8, 3, 2, 1)
        self.dec1 = torch.nn.ConvTranspose2d(8, 8, 3, 2, 1, output_padding=1)
        self.dec2 = torch.nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):  # logits
        x = torch.relu(self.dec1(torch.relu(self.enc1(x))))
        x = torch.nn.functional.interpolate(torch.nn.functional.max_pool2d(x, 2), scale_factor=2)
        return self.dec2(x)


def ruche_train(ranks, out, args):
    shutil.rmtree(out, ignore_errors=True)
    # Plain SGD with momentum and a fixed rate, as torch.optim.SGD (no Nesterov, no warmup).
    (WORK / "solver.prototxt").write_text(
        f'type: "sgd" base_lr: {LR} momentum: {MOMENTUM} nesterov: false weight_decay: 0\n'
        f'lr_policy: "fixed" warmup_epochs: 0 warmup_steps: 0 max_iter: {STEPS} display: 1\n'
        f'batch_size: {GLOBAL_BATCH // ranks} random_seed: 5 val_fraction: 0 shuffle: false\n'
        'augment: false reconstruct: true\n')
    cmd = [MPIEXEC, *MPI_FLAGS, "-np", str(ranks), RUCHE, "train", "--out", str(out),
           "--data", str(WORK / "data.npz"), "--init-weights", str(WORK / "init.npz"),
           "--solver", str(WORK / "solver.prototxt"), "--normalize", "none", *args]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        print(" ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
    return p


def torch_train(model, x, loss_fn):
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    xs = torch.from_numpy(x)
    for step in range(STEPS):
        batch = xs[GLOBAL_BATCH * step:GLOBAL_BATCH * (step + 1)]
        opt.zero_grad()
        loss_fn(model(batch), batch).backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def compare(ours, theirs, start, what):
    worst, moved = 0.0, 0.0
    for name, b in theirs.items():
        if name not in ours or ours[name].shape != b.shape:
            check(False, f"{what}: {name} missing or of another shape")
            return
        a = ours[name].astype(np.float64)
        err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
        if os.environ.get("AE_VERBOSE"):
            print(f"  {name:14s} {err:.2e}")
        worst = max(worst, err)
        moved = max(moved, np.linalg.norm(b - start[name]) / max(np.linalg.norm(b), 1e-12))
    check(moved > 1e-3, f"{what}: the weights moved ({moved:.2e} at most)")
    check(worst < 1e-4, f"{what}: worst norm-relative error against PyTorch {worst:.2e} < 1e-4")


def run_case(name, model, loss_fn, args):
    torch.manual_seed(0)
    start = {k: v.detach().clone().numpy() for k, v in model.state_dict().items()}
    np.savez(WORK / "init.npz", **start)
    theirs = torch_train(model, X, loss_fn)
    for ranks in (1, 2):
        out = WORK / f"{name}-np{ranks}"
        p = ruche_train(ranks, out, args)
        if not check(p.returncode == 0, f"{name} on {ranks} rank(s) trains"):
            continue
        compare(dict(np.load(out / "model.npz")), theirs, start, f"{name} on {ranks} rank(s)")
        check("mse" in p.stdout and "psnr" in p.stdout,
              f"{name} on {ranks} rank(s): the progress line gives mse and psnr")


rng = np.random.default_rng(0)
# Smooth blobs in [0, 1]: something an autoencoder can learn.
yy, xx = np.mgrid[0:28, 0:28]
centres = rng.uniform(6, 22, (128, 2))
X = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 30.0)
X = (X[:, None] + 0.05 * rng.random((128, 1, 28, 28))).clip(0, 1).astype(np.float32)
np.savez(WORK / "data.npz", x=X, y=np.zeros(128, np.int64))

torch.manual_seed(0)
run_case("conv_autoencoder+mse", ConvAutoencoder(8), torch.nn.functional.mse_loss,
         ["--model", "conv_autoencoder", "--bottleneck", "8"])

(WORK / "bce.prototxt").write_text(BCE_NET)
torch.manual_seed(0)
run_case("sigmoid+bce", BceNet(), torch.nn.functional.binary_cross_entropy_with_logits,
         ["--net", str(WORK / "bce.prototxt")])

finish()
