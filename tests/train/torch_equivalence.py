#!/usr/bin/env python3
"""ruche and PyTorch train the same net from the same weights on the same batches (no shuffle,
augmentation or dropout) and must end with the same weights (norm-relative 1e-4).

usage: torch_equivalence.py RUCHE_BINARY WORKDIR
"""
import pathlib
import sys

import numpy as np
import torch

from caffe_zoo_torch import ruche_train, torch_train, worst_error  # both runs, the comparison

NET = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" }
layer { name: "relu1" type: "ReLU" bottom: "bn1" top: "bn1" }
layer { name: "pool1" type: "Pooling" bottom: "bn1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
        inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""

SOLVER = """
type: "sgd" base_lr: 0.1 momentum: 0.9 weight_decay: 0.0001 lr_policy: "fixed"
batch_size: 32 max_iter: 6 display: 1 random_seed: 5
val_fraction: 0 shuffle: false augment: false
"""


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8 * 4 * 4, 4)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        return self.fc(x.flatten(1))


def main() -> int:
    ruche, work = sys.argv[1], pathlib.Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.random((256, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 4, 256).astype(np.int32)
    np.savez(work / "data.npz", x=x, y=y)
    torch.manual_seed(0)
    model = Net()
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ours = ruche_train(ruche, work, NET, SOLVER, work / "data.npz", start)

    torch_train(model, x, y,
                lambda m, xs, ys: torch.nn.functional.cross_entropy(m(xs), ys))

    worst = worst_error("net", ours, model, start)
    if worst > 1e-4:
        print(f"FAIL: worst error {worst:.2e} > 1e-4")
        return 1
    print(f"ruche and PyTorch agree: worst norm-relative error {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
