#!/usr/bin/env python3
"""`ruche data describe` on fixtures with known contents: split sizes and class counts, the
imbalance ratio and the flags it suggests, per-channel mean/std against numpy, the value range
and dtype; exact duplicates (train/test, train/val, within train) and near duplicates (a copy
with small noise) planted and found and counted, and none reported on a clean fixture; the same
on CIFAR binary batches (3 channels) and an ImageFolder; describe.json and samples.png written.
`ruche data bench` answers beside it.

usage: data_describe.py RUCHE_BINARY WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = os.path.abspath(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def ruche(*args):
    return subprocess.run([RUCHE, *args], capture_output=True, text=True, env=ENV, cwd=WORK)


def describe(*args):
    r = ruche("data", "describe", *args)
    check(r.returncode == 0, f"describe {' '.join(args)}: exit 0 ({r.stderr.strip()[-300:]})")
    return r


def dup(report, kind, a, b):
    for d in report["duplicates"]:
        if d["kind"] == kind and d["a"] == a and d["b"] == b:
            return d
    return None


rng = np.random.default_rng(7)
COUNTS = [50, 30, 20]  # imbalance 2.5


def blocky(n):  # smooth-ish images: 8 x 8 blocks of 2 x 2 pixels (photographs are not noise)
    return np.kron(rng.integers(0, 256, (n, 1, 8, 8)), np.ones((2, 2), int)).astype(np.uint8)


x_train = blocky(sum(COUNTS))
y_train = np.repeat(np.arange(3), COUNTS).astype(np.int64)
x_test = blocky(30)
y_test = np.repeat(np.arange(3), 10).astype(np.int64)
np.savez(WORK / "clean.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

# Planted: test 0-2 exact copies of train 5-7; test 3-4 near copies of train 8, 9 (+-2 noise,
# far less than neighbouring blocks differ); train 60 an exact copy of train 1 and train 61 a
# near copy of train 2.
leaky_train, leaky_test = x_train.copy(), x_test.copy()
leaky_test[0:3] = x_train[5:8]
for t, s in ((3, 8), (4, 9)):
    noise = rng.integers(-2, 3, x_train[s].shape)
    leaky_test[t] = np.clip(x_train[s].astype(int) + noise, 0, 255).astype(np.uint8)
leaky_train[60] = x_train[1]
leaky_train[61] = np.clip(x_train[2].astype(int) + rng.integers(-2, 3, x_train[2].shape), 0,
                          255).astype(np.uint8)
np.savez(WORK / "leaky.npz", x_train=leaky_train, y_train=y_train, x_test=leaky_test,
         y_test=y_test)

# 1. The clean fixture without a held-out split: counts, imbalance, statistics, no duplicates.
r = describe("--data", "clean.npz", "--val-fraction", "0", "-o", "clean")
rep = json.loads((WORK / "clean" / "describe.json").read_text())
check(rep["splits"]["train"]["size"] == 100 and rep["splits"]["test"]["size"] == 30,
      f"split sizes 100 and 30 ({rep['splits']})")
check(rep["splits"]["train"]["class_counts"] == COUNTS, "train class counts 50/30/20")
check(abs(rep["splits"]["train"]["imbalance"] - 2.5) < 1e-9, "imbalance ratio 2.5")
check("--class-weights auto" in rep["suggested_flags"] and "--balance over" in
      rep["suggested_flags"], f"balancing flags suggested ({rep['suggested_flags']})")
check(rep["dtype"] == "uint8" and rep["min"] == float(x_train.min()) and
      rep["max"] == float(x_train.max()), f"uint8, range {rep['min']}-{rep['max']}")
v = x_train.astype(np.float64) / 255
check(abs(rep["mean"][0] - v.mean()) < 1e-5 and abs(rep["std"][0] - v.std()) < 1e-5,
      f"mean/std {rep['mean']}/{rep['std']} = numpy's {v.mean():.6f}/{v.std():.6f}")
check(rep["near_threshold"] == 4 and "256-bit dHash within Hamming distance 4" in r.stdout,
      "the threshold is stated")
found = [(d["kind"], d["a"], d["b"], d["samples"]) for d in rep["duplicates"] if d["samples"]]
check(not found and r.stdout.count(": none") == 4, f"no duplicates reported ({found})")
check((WORK / "clean" / "samples.png").stat().st_size > 1000, "samples.png written")
check("50" in r.stdout and "imbalanced" in r.stdout, "the table prints counts and the verdict")

# 2. The leaky fixture: every plant found and counted.
r = describe("--data", "leaky.npz", "--val-fraction", "0", "-o", "leaky")
rep = json.loads((WORK / "leaky" / "describe.json").read_text())
e = dup(rep, "exact", "train", "test")
check(e and e["samples"] == 3 and sorted(j for _, j in e["examples"]) == [0, 1, 2] and
      sorted(i for i, _ in e["examples"]) == [5, 6, 7], f"3 exact train/test copies ({e})")
n = dup(rep, "near", "train", "test")
check(n and n["samples"] == 2 and sorted(map(tuple, n["examples"])) == [(8, 3), (9, 4)],
      f"2 near train/test copies, exact ones not counted again ({n})")
e = dup(rep, "exact", "train", "train")
check(e and e["samples"] == 1 and e["examples"] == [[1, 60]], f"1 exact copy within train ({e})")
n = dup(rep, "near", "train", "train")
check(n and n["samples"] == 1 and n["examples"] == [[2, 61]], f"1 near copy within train ({n})")
check("3 test samples also in train" in r.stdout, "the report says it in words")
check((WORK / "leaky" / "duplicates.png").stat().st_size > 1000 and
      not (WORK / "clean" / "duplicates.png").exists(),
      "duplicates.png drawn where duplicates were found, not on the clean fixture")

# 3. A held-out validation split (10% per class, as ruche train holds it out): its counts, and
# the within-train copy pair leaks across train/val or stays within train.
rep = json.loads(describe("--data", "leaky.npz", "-o", "held").stdout and
                 (WORK / "held" / "describe.json").read_text())
check(rep["splits"]["val"]["class_counts"] == [5, 3, 2] and
      rep["splits"]["train"]["class_counts"] == [45, 27, 18],
      f"val 5/3/2, train 45/27/18 ({rep['splits']})")
tv = dup(rep, "exact", "train", "val")["samples"]
tt = dup(rep, "exact", "train", "train")["samples"]
check(tv + tt == 1, f"the copied pair is counted once, in train/val or within train ({tv}, {tt})")

# 4. CIFAR binary batches (3 channels): counts, per-channel statistics, a planted copy.
cifar = WORK / "cifar"
cifar.mkdir()
cx = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
cy = np.tile(np.arange(10), 4).astype(np.uint8)
tx = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
ty = np.tile(np.arange(10), 2).astype(np.uint8)
tx[3] = cx[11]
ty[3] = cy[11]


def batch(path, x, y):
    rows = np.concatenate([y[:, None], x.reshape(len(x), -1)], axis=1).astype(np.uint8)
    rows.tofile(path)


for k in range(1, 6):  # data_batch_1..5: 8 each
    batch(cifar / f"data_batch_{k}.bin", cx[(k - 1) * 8:k * 8], cy[(k - 1) * 8:k * 8])
batch(cifar / "test_batch.bin", tx, ty)
(cifar / "batches.meta.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
r = describe("--data", "cifar", "--val-fraction", "0", "-o", "cifar-out")
if r.returncode == 0:
    rep = json.loads((WORK / "cifar-out" / "describe.json").read_text())
    check(rep["sample_shape"] == [3, 32, 32] and rep["splits"]["train"]["size"] == 40,
          f"CIFAR: 40 training samples 3x32x32 ({rep['sample_shape']})")
    means = (cx.astype(np.float64) / 255).mean(axis=(0, 2, 3))
    check(np.allclose(rep["mean"], means, atol=1e-5), f"CIFAR per-channel means {rep['mean']}")
    e = dup(rep, "exact", "train", "test")
    check(e["samples"] == 1 and e["examples"] == [[11, 3]], f"CIFAR: the planted copy ({e})")
    check(rep["splits"]["train"]["imbalance"] == 1.0 and not rep["suggested_flags"],
          "CIFAR: balanced, no flag suggested")

# 5. An ImageFolder (JPEG files through the validation transform): counts and a copied file.
try:
    from PIL import Image
    for split, n in (("train", 4), ("val", 2)):
        for c in range(2):
            folder = WORK / "folder" / split / f"k{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
                    folder / f"{i}.JPEG", quality=90)
    shutil.copy(WORK / "folder/train/k1/2.JPEG", WORK / "folder/val/k1/0.JPEG")
    r = describe("--data", "folder", "--samples-per-class", "2")
    check("train 8 val 4" in r.stdout, f"ImageFolder: train 8 val 4 ({r.stdout[:300]})")
    check("exact  train / val: 1 val sample also in train" in r.stdout,
          "ImageFolder: the copied file found across train/val")
    # 6. The same images as .tar shards (ruche convert): streamed, the same counts and copy.
    r = ruche("convert", "imagefolder", "folder", "-o", "shards")
    check(r.returncode == 0, f"convert: {r.stderr.strip()[-200:]}")
    r = describe("--data", "shards", "-o", "shards-out")
    rep = json.loads((WORK / "shards-out" / "describe.json").read_text())
    check(rep["kind"] == "shards" and rep["splits"]["train"]["class_counts"] == [4, 4] and
          rep["splits"]["val"]["class_counts"] == [2, 2],
          f"shards: train 4/4, val 2/2 ({rep['splits']})")
    check(dup(rep, "exact", "train", "val")["samples"] == 1, "shards: the copied file found")
except ImportError:
    print("skip  ImageFolder (no PIL)")

# 7. bench moved under data; the old name still answers (hidden) for the benchmark.
r = ruche("data", "--help")
check(r.returncode == 0 and "describe" in r.stdout and "bench" in r.stdout,
      "ruche data lists describe and bench")
r = ruche("data", "bench", "--data", "nowhere")
check(r.returncode == 2 and "nowhere" in r.stderr, "data bench: a missing source, exit 2")
r = ruche("data", "bench", "--data", "clean.npz", "--batch-size", "10", "--warmup", "1",
          "--batches", "12")
check(r.returncode == 0 and "data-bench: 120 images in" in r.stdout,
      f"data bench on an npz: 12 batches of 10 timed across epochs ({r.stdout.strip()})")
r = ruche("data", "describe", "--data", "nowhere.npz")
check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1,
      f"a missing data set: exit 2, one line ({r.stderr.strip()})")

finish()
