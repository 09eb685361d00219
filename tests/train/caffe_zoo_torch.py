#!/usr/bin/env python3
"""Nets of Caffe's model-zoo shapes (issue 19), trained by ruche and by PyTorch from the same
weights on the same batches (no shuffle, augmentation or dropout), must end with the same weights
(norm-relative 1e-4):

- googlenet: LRN across channels, an inception module joined by Concat, and GoogLeNet's three
  SoftmaxWithLoss heads, the two auxiliary ones with loss_weight 0.3: PyTorch trains on
  0.3 * aux1 + 0.3 * aux2 + main.
- mobilenet: depthwise convolution (group = channels) and pointwise convolutions, each followed by
  BatchNorm { affine: false } and Scale { bias_term: true } written in place as Caffe writes them
  (PyTorch: BatchNorm2d(affine=False) and a per-channel weight and bias), a bottleneck-style
  residual join, LRN within a channel and a Power layer.

usage: caffe_zoo_torch.py RUCHE_BINARY WORKDIR
"""
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

GOOGLENET = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
        lrn_param { local_size: 5 alpha: 0.05 beta: 0.75 k: 1 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "b1" type: "Convolution" bottom: "pool1" top: "b1"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "b2r" type: "Convolution" bottom: "pool1" top: "b2r"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "b2r_relu" type: "ReLU" bottom: "b2r" top: "b2r" }
layer { name: "b2" type: "Convolution" bottom: "b2r" top: "b2"
        convolution_param { num_output: 5 kernel_size: 3 pad: 1 } }
layer { name: "b3p" type: "Pooling" bottom: "pool1" top: "b3p"
        pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "b3" type: "Convolution" bottom: "b3p" top: "b3"
        convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "cat" type: "Concat" bottom: "b1" bottom: "b2" bottom: "b3" top: "cat" }
layer { name: "cat_relu" type: "ReLU" bottom: "cat" top: "cat" }
layer { name: "aux1_pool" type: "Pooling" bottom: "cat" top: "aux1_pool"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "aux1_fc" type: "InnerProduct" bottom: "aux1_pool" top: "aux1_fc"
        inner_product_param { num_output: 4 } }
layer { name: "loss1" type: "SoftmaxWithLoss" bottom: "aux1_fc" bottom: "label" top: "loss1"
        loss_weight: 0.3 }
layer { name: "c2" type: "Convolution" bottom: "cat" top: "c2"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "c2_relu" type: "ReLU" bottom: "c2" top: "c2" }
layer { name: "aux2_pool" type: "Pooling" bottom: "c2" top: "aux2_pool"
        pooling_param { pool: MAX global_pooling: true } }
layer { name: "aux2_fc" type: "InnerProduct" bottom: "aux2_pool" top: "aux2_fc"
        inner_product_param { num_output: 4 } }
layer { name: "loss2" type: "SoftmaxWithLoss" bottom: "aux2_fc" bottom: "label" top: "loss2"
        loss_weight: 0.3 }
layer { name: "pool5" type: "Pooling" bottom: "c2" top: "pool5"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool5" top: "fc"
        inner_product_param { num_output: 4 } }
layer { name: "loss3" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss3" }
"""


class GoogLeNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.b1 = torch.nn.Conv2d(8, 4, 1)
        self.b2r = torch.nn.Conv2d(8, 3, 1)
        self.b2 = torch.nn.Conv2d(3, 5, 3, padding=1)
        self.b3 = torch.nn.Conv2d(8, 2, 1)
        self.aux1_fc = torch.nn.Linear(11, 4)
        self.c2 = torch.nn.Conv2d(11, 8, 3, padding=1)
        self.aux2_fc = torch.nn.Linear(8, 4)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x, y):
        x = F.local_response_norm(torch.relu(self.conv1(x)), 5, alpha=0.05, beta=0.75, k=1.0)
        x = F.max_pool2d(x, 2)
        cat = torch.relu(torch.cat([self.b1(x), self.b2(torch.relu(self.b2r(x))),
                                    self.b3(F.max_pool2d(x, 3, stride=1, padding=1))], dim=1))
        aux1 = self.aux1_fc(cat.mean((2, 3)))
        c2 = torch.relu(self.c2(cat))
        aux2 = self.aux2_fc(c2.amax((2, 3)))
        main = self.fc(c2.mean((2, 3)))
        return 0.3 * F.cross_entropy(aux1, y) + 0.3 * F.cross_entropy(aux2, y) + \
            F.cross_entropy(main, y)


MOBILENET = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "conv1_bn" type: "BatchNorm" bottom: "conv1" top: "conv1"
        batch_norm_param { affine: false } }
layer { name: "conv1_scale" type: "Scale" bottom: "conv1" top: "conv1"
        scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "dw" type: "Convolution" bottom: "conv1" top: "dw"
        convolution_param { num_output: 8 group: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "dw_bn" type: "BatchNorm" bottom: "dw" top: "dw" batch_norm_param { affine: false } }
layer { name: "dw_scale" type: "Scale" bottom: "dw" top: "dw" scale_param { bias_term: true } }
layer { name: "dw_relu" type: "ReLU" bottom: "dw" top: "dw" }
layer { name: "pw" type: "Convolution" bottom: "dw" top: "pw"
        convolution_param { num_output: 8 kernel_size: 1 bias_term: false } }
layer { name: "pw_bn" type: "BatchNorm" bottom: "pw" top: "pw" batch_norm_param { affine: false } }
layer { name: "pw_scale" type: "Scale" bottom: "pw" top: "pw" scale_param { bias_term: true } }
layer { name: "res" type: "Eltwise" bottom: "conv1" bottom: "pw" top: "res" }
layer { name: "res_relu" type: "ReLU" bottom: "res" top: "res" }
layer { name: "norm" type: "LRN" bottom: "res" top: "norm"
        lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "pow" type: "Power" bottom: "norm" top: "pow"
        power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "pool" type: "Pooling" bottom: "pow" top: "pool"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
        inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


class Scale(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class MobileNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.conv1_bn = torch.nn.BatchNorm2d(8, affine=False)
        self.conv1_scale = Scale(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.dw_bn = torch.nn.BatchNorm2d(8, affine=False)
        self.dw_scale = Scale(8)
        self.pw = torch.nn.Conv2d(8, 8, 1, bias=False)
        self.pw_bn = torch.nn.BatchNorm2d(8, affine=False)
        self.pw_scale = Scale(8)
        self.fc = torch.nn.Linear(8, 4)
        with torch.no_grad():  # away from 1 and 0, so a Scale that did nothing would show
            for s in (self.conv1_scale, self.dw_scale, self.pw_scale):
                s.weight.uniform_(0.5, 1.5)
                s.bias.uniform_(-0.2, 0.2)

    def forward(self, x, y):
        c1 = torch.relu(self.conv1_scale(self.conv1_bn(self.conv1(x))))
        dw = torch.relu(self.dw_scale(self.dw_bn(self.dw(c1))))
        res = torch.relu(c1 + self.pw_scale(self.pw_bn(self.pw(dw))))
        pad = F.pad(res * res, (1, 1, 1, 1))
        norm = res * (1.0 + 0.1 * F.avg_pool2d(pad, 3, stride=1)) ** -0.75
        out = (1.0 + 0.5 * norm) ** 2
        return F.cross_entropy(self.fc(out.mean((2, 3))), y)


SOLVER = """
type: "sgd" base_lr: 0.1 momentum: 0.9 weight_decay: 0.0001 lr_policy: "fixed"
batch_size: 32 max_iter: 6 display: 1 random_seed: 5
val_fraction: 0 shuffle: false augment: false
"""


def ruche_train(ruche, case, net_text, solver_text, data, start, *flags):
    """`ruche train` of net_text and solver_text from the weights `start` (name -> tensor) in the
    folder `case`; returns its RUN/model.npz."""
    case.mkdir(parents=True, exist_ok=True)
    (case / "net.prototxt").write_text(net_text)
    (case / "solver.prototxt").write_text(solver_text)
    np.savez(case / "init.npz", **{k: np.asarray(v) for k, v in start.items()})
    run = case / "run"
    shutil.rmtree(run, ignore_errors=True)
    subprocess.run([ruche, "train", "--net", str(case / "net.prototxt"), "--solver",
                    str(case / "solver.prototxt"), "--data", str(data),
                    "--init-weights", str(case / "init.npz"), "--out", str(run), *flags],
                   check=True, stdout=subprocess.DEVNULL)
    return np.load(run / "model.npz")


def worst_error(name, ours, model, start) -> float:
    """The largest norm-relative difference between ruche's weights and the PyTorch model's, each
    tensor printed with how far it moved from `start`."""
    worst = 0.0
    for key, theirs in model.state_dict().items():
        if key not in ours.files:
            print(f"{name}: {key} missing from ruche's model.npz ({sorted(ours.files)})")
            return float("inf")
        a, b = ours[key].astype(np.float64), theirs.numpy().astype(np.float64)
        if a.shape != b.shape:
            print(f"{name}: {key}: shape {a.shape} vs torch {b.shape}")
            return float("inf")
        err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
        moved = np.linalg.norm(b - np.asarray(start[key], dtype=np.float64)) / max(
            np.linalg.norm(b), 1e-12)
        print(f"{name}: {key:22s} norm-relative error {err:.2e} (moved {moved:.2e})")
        worst = max(worst, err)
    return worst


def torch_train(model, x, y, loss) -> None:
    """Six SGD steps in PyTorch, as the tests' solvers ask: ruche's input pipeline (the
    population mean and std over the training set), batches of 32 in order, SGD lr 0.1,
    momentum 0.9, decay 1e-4. loss(model, xs, ys) is the batch's loss."""
    mean, std = x.astype(np.float64).mean(), x.astype(np.float64).std()
    xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
    ys = torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model.train()
    for step in range(6):
        batch = slice(32 * step, 32 * (step + 1))
        opt.zero_grad()
        loss(model, xs[batch], ys[batch]).backward()
        opt.step()


def run_case(name, net_text, model, ruche, work, x, y) -> float:
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ours = ruche_train(ruche, work / name, net_text, SOLVER, work / "data.npz", start)
    torch_train(model, x, y, lambda m, xs, ys: m(xs, ys))
    return worst_error(name, ours, model, start)


def main() -> int:
    ruche, work = sys.argv[1], pathlib.Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.random((256, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 4, 256).astype(np.int32)
    np.savez(work / "data.npz", x=x, y=y)
    torch.manual_seed(0)
    worst = 0.0
    for name, text, model in (("googlenet", GOOGLENET, GoogLeNet()),
                              ("mobilenet", MOBILENET, MobileNet())):
        worst = max(worst, run_case(name, text, model, ruche, work, x, y))
    if worst > 1e-4:
        print(f"FAIL: worst error {worst:.2e} > 1e-4")
        return 1
    print(f"ruche and PyTorch agree: worst norm-relative error {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
