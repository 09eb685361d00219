#!/usr/bin/env python3
"""LeNet in Caffe's train_test form (Data layers by phase, Accuracy, xavier fillers, lr_mult 2 on
biases) with a Caffe solver (inv policy, momentum 0.9, weight decay), imported by `ruche import
caffe` and trained on Fashion-MNIST.

equivalence (unit): PyTorch runs the same net under Caffe's solver semantics (v = m v + lr (g +
wd w); w -= v; lr = base_lr (1 + gamma iter)^-power), from ruche's step-0 weights on the same
batches; after N steps every tensor agrees with ruche's (norm-relative 1e-4), and PyTorch's own
momentum order (v = m v + g; w -= lr v) does not.
accuracy FLOOR (slow): Caffe's own LeNet solver for 2000 steps; the test accuracy reaches FLOOR
(85.8% measured on 2 cores, 11 minutes).

usage: caffe_lenet.py RUCHE_BINARY WORKDIR equivalence | accuracy FLOOR
"""
import gzip
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "train"))
from caffe_zoo_torch import ruche_train, worst_error  # noqa: E402

FASHION = pathlib.Path("/usr/share/datasets/fashion-mnist")

LENET = """name: "LeNet"
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 }
  data_param { source: "examples/mnist/mnist_train_lmdb" batch_size: 64 backend: LMDB } }
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 }
  data_param { source: "examples/mnist/mnist_test_lmdb" batch_size: 100 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 50 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 500
    weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10
    weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

# Caffe's LeNet solver; the equivalence run takes gamma 0.05 so that lr falls by 40% within its
# steps and the two momentum orders part.
SOLVER = """net: "lenet_train_test.prototxt"
test_iter: 100
test_interval: 500
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 100
max_iter: 10000
snapshot: 5000
snapshot_prefix: "examples/mnist/lenet"
solver_mode: CPU
"""
STEPS, BATCH, GAMMA = 12, 64, 0.05


class LeNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 20, 5)
        self.conv2 = torch.nn.Conv2d(20, 50, 5)
        self.ip1 = torch.nn.Linear(800, 500)
        self.ip2 = torch.nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        return self.ip2(torch.relu(self.ip1(x.flatten(1))))


def fashion_train(count):
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:count]
    with gzip.open(FASHION / "train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:count]
    return x.astype(np.float32), y.astype(np.int64)


def run(*args):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


def import_lenet(ruche, work, solver_text):
    (work / "lenet_train_test.prototxt").write_text(LENET)
    (work / "lenet_solver.prototxt").write_text(solver_text)
    out = work / "imported"
    shutil.rmtree(out, ignore_errors=True)
    run(ruche, "import", "caffe", work / "lenet_train_test.prototxt", "--solver",
        work / "lenet_solver.prototxt", "-o", out)
    return out


def caffe_steps(model, xs, ys, base_lr, gamma, power, caffe_order):
    """STEPS steps of Caffe's SGDSolver (lr_mult 2 on biases, decay_mult 1 everywhere), or with
    PyTorch's momentum order when caffe_order is False."""
    history = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for it in range(STEPS):
        lr = base_lr * (1 + gamma * it) ** -power
        batch = slice(BATCH * it, BATCH * (it + 1))
        model.zero_grad()
        F.cross_entropy(model(xs[batch]), ys[batch]).backward()
        with torch.no_grad():
            for n, p in model.named_parameters():
                local_lr = lr * (2 if n.endswith("bias") else 1)
                g = p.grad + 0.0005 * p
                if caffe_order:
                    history[n].mul_(0.9).add_(local_lr * g)
                    p.sub_(history[n])
                else:
                    history[n].mul_(0.9).add_(g)
                    p.sub_(local_lr * history[n])


def equivalence(ruche, work) -> int:
    out = import_lenet(ruche, work, SOLVER.replace("gamma: 0.0001", f"gamma: {GAMMA}"))
    solver = (out / "solver.prototxt").read_text()
    for want in ('momentum_form: "caffe"', 'lr_policy: "inv"', "power: 0.75", "momentum: 0.9",
                 "weight_decay: 0.0005", "eval_every_steps: 500", "checkpoint_every_steps: 5000",
                 "batch_size: 64"):
        assert want in solver, (want, solver)
    report = (out / "import-report.txt").read_text()
    for dropped in ("test_iter", "snapshot_prefix", "solver_mode", "accuracy"):
        assert dropped in report, (dropped, report)
    flags = ("--data", FASHION, "--val-fraction", "0", "--no-shuffle", "--no-augment",
             "--no-checkpoint")

    # ruche's step-0 weights: one step at lr 0 changes nothing.
    first = work / "step0"
    shutil.rmtree(first, ignore_errors=True)
    run(ruche, "train", "--net", out / "net.prototxt", "--solver", out / "solver.prototxt",
        "--out", first, "--max-steps", "1", "--lr", "0", *flags)
    start = dict(np.load(first / "model.npz"))
    for name in ("conv1.weight", "conv2.weight", "ip1.weight", "ip2.weight"):
        w = start[name]
        bound = np.sqrt(3.0 / (w.size / w.shape[0]))  # Caffe's xavier: U(+-sqrt(3 / fan_in))
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound, (name, bound)

    model = LeNet()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in start.items()})
    ours = ruche_train(ruche, out, (out / "net.prototxt").read_text(), solver,
                       FASHION, start, "--max-steps", str(STEPS), *flags[2:])
    x, y = fashion_train(STEPS * BATCH)
    xs, ys = torch.from_numpy(x * np.float32(0.00390625)), torch.from_numpy(y)
    caffe_steps(model, xs, ys, 0.01, GAMMA, 0.75, caffe_order=True)
    worst = worst_error("lenet", ours, model, start)

    other = LeNet()
    other.load_state_dict({k: torch.from_numpy(v) for k, v in start.items()})
    caffe_steps(other, xs, ys, 0.01, GAMMA, 0.75, caffe_order=False)
    apart = worst_error("pytorch order", ours, other, start)
    if worst > 1e-4 or apart < 1e-3:
        print(f"FAIL: ruche vs Caffe's semantics {worst:.2e} (want <= 1e-4); vs PyTorch's "
              f"momentum order {apart:.2e} (want >= 1e-3)")
        return 1
    print(f"LeNet from Caffe's files: ruche = Caffe's solver in PyTorch after {STEPS} steps "
          f"(worst {worst:.2e}); PyTorch's momentum order differs by {apart:.2e}")
    return 0


def accuracy(ruche, work, floor) -> int:
    out = import_lenet(ruche, work, SOLVER)
    check = pathlib.Path(__file__).resolve().parents[1] / "train" / "check_accuracy.py"
    p = subprocess.run([sys.executable, str(check), ruche, str(work / "run"), str(floor),
                        "--net", str(out / "net.prototxt"),
                        "--solver", str(out / "solver.prototxt"), "--max-steps", "2000"])
    return p.returncode


def main() -> int:
    ruche, work, mode = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    work.mkdir(parents=True, exist_ok=True)
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        print(f"skipped: no Fashion-MNIST at {FASHION} (Debian's dataset-fashion-mnist)")
        return 77
    torch.manual_seed(0)
    torch.set_num_threads(2)
    return equivalence(ruche, work) if mode == "equivalence" else accuracy(ruche, work,
                                                                            float(sys.argv[4]))


if __name__ == "__main__":
    sys.exit(main())
