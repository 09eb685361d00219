#!/usr/bin/env python3
"""Fashion-MNIST made imbalanced: keeps a seeded FRACTION of the training samples of CLASSES
(default 5% of classes 0-4) and every other training sample; the test split stays as it is
(balanced), so per-class recall on it shows what the imbalance costs.

    make_imbalanced.py OUT.npz [--classes 0,1,2,3,4] [--fraction 0.05] [--seed 1]
        [--source /usr/share/datasets/fashion-mnist]

Writes x_train, y_train, x_test, y_test (uint8 [N, 28, 28], int64 [N]): `ruche train --data
OUT.npz` reads them."""
import argparse
import gzip
import os

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--classes", default="0,1,2,3,4")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    a = parser.parse_args()
    x = read_idx(os.path.join(a.source, "train-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(a.source, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    rng = np.random.default_rng(a.seed)
    keep = np.ones(len(y), dtype=bool)
    for c in (int(c) for c in a.classes.split(",")):
        members = np.flatnonzero(y == c)
        dropped = rng.permutation(members)[round(a.fraction * len(members)):]
        keep[dropped] = False
    np.savez(a.out, x_train=x[keep], y_train=y[keep],
             x_test=read_idx(os.path.join(a.source, "t10k-images-idx3-ubyte.gz")),
             y_test=read_idx(os.path.join(a.source, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    counts = np.bincount(y[keep], minlength=10)
    print(f"{a.out}: {keep.sum()} training samples, per class {counts.tolist()}")


if __name__ == "__main__":
    main()
