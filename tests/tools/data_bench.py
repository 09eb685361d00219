#!/usr/bin/env python3
"""`ruche data-bench` (the probe benchmarks/input_pipeline.py times the shard loader with) on
shards of a tiny generated ImageFolder: the images it counts, across an epoch's end, padded
(train) and with a short last batch (val); its line parsed by the benchmark's own pattern; bad
input exits 2 in one line; and it stays out of `ruche --help`.

usage: data_bench.py RUCHE_BINARY WORKDIR
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import input_pipeline  # noqa: E402  (its RUCHE_LINE reads data-bench's output)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = os.path.abspath(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def ruche(*args):
    return subprocess.run([RUCHE, *args], capture_output=True, text=True, env=ENV, cwd=WORK)


# 3 classes: 10 training and 3 validation JPEGs each (30 and 9 samples).
rng = np.random.default_rng(0)
for split, n in (("train", 10), ("val", 3)):
    for k in range(3):
        folder = WORK / "folder" / split / f"c{k}"
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(
                folder / f"{i}.JPEG", quality=90)
r = ruche("convert", "imagefolder", "folder", "-o", "shards")
check(r.returncode == 0, f"convert: {r.stderr.strip()[-200:]}")


def images(*args):
    r = ruche("data-bench", "--data", "shards", *args)
    m = input_pipeline.RUCHE_LINE.search(r.stdout)
    check(r.returncode == 0 and m is not None, f"data-bench {' '.join(args)}: {r.stdout.strip()}"
          f"{r.stderr.strip()}")
    return int(m.group(1)) if m else -1, float(m.group(2)) if m else -1.0


# train: 30 samples in full batches of 4 = 8 padded steps an epoch; 2 warm-up + 10 timed cross
# into the second epoch, every one a full batch.
n, wall = images("--batch-size", "4", "--warmup", "2", "--batches", "10", "--workers", "2")
check(n == 40, f"train: 10 timed batches of 4 are 40 images (got {n})")
check(wall > 0, f"train: a positive time ({wall})")
# val: 9 samples unpadded in batches of 4 = 4 + 4 + 1; 3 batches are exactly one epoch.
n, _ = images("--split", "val", "--batch-size", "4", "--warmup", "0", "--batches", "3")
check(n == 9, f"val: one epoch of 9 images, the last batch short (got {n})")
n, _ = images("--split", "val", "--batch-size", "4", "--warmup", "0", "--batches", "4",
              "--no-dct-scaling")
check(n == 13, f"val: a fourth batch starts the next epoch, 9 + 4 images (got {n})")

for args, says in ((["--data", "nowhere"], "nowhere"),
                   (["--data", "shards", "--workers", "0"], "--workers"),
                   (["--data", "shards", "--split", "test"], "no test samples")):
    r = ruche("data-bench", *args)
    check(r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1,
          f"data-bench {' '.join(args)}: exit 2, one line naming {says!r} "
          f"(got {r.returncode}: {r.stderr.strip()})")

r = ruche("--help")
check(r.returncode == 0 and "data-bench" not in r.stdout, "data-bench is hidden from ruche --help")

finish()
