#!/usr/bin/env python3
"""Fashion-MNIST written as CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin,
batches.meta.txt): each 28x28 image padded to 32x32 and repeated over 3 channels, so the
CIFAR-format reader is exercised with data at hand (no CIFAR-10 download needed).

usage: fashion_as_cifar.py OUT_DIR [FASHION_DIR]
"""
import gzip
import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
src = Path(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist")
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"]


def idx(name, offset):
    with gzip.open(src / name) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def rows(images, labels):
    x = np.pad(images.reshape(-1, 28, 28), ((0, 0), (2, 2), (2, 2)))
    x = np.repeat(x[:, None], 3, axis=1).reshape(len(x), -1)
    return np.concatenate([labels[:, None], x], axis=1).astype(np.uint8)


out.mkdir(parents=True, exist_ok=True)
train = rows(idx("train-images-idx3-ubyte.gz", 16), idx("train-labels-idx1-ubyte.gz", 8))
for k in range(5):
    train[k * 12000:(k + 1) * 12000].tofile(out / f"data_batch_{k + 1}.bin")
rows(idx("t10k-images-idx3-ubyte.gz", 16), idx("t10k-labels-idx1-ubyte.gz", 8)).tofile(
    out / "test_batch.bin")
(out / "batches.meta.txt").write_text("\n".join(NAMES) + "\n")
print(f"wrote {out}: 60000 training and 10000 test images, 3x32x32")
