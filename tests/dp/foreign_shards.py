#!/usr/bin/env python3
"""Shards ruche did not write, as a new user brings them: two training shards and one validation
shard written by Python's tarfile (its default PAX format, keys over 100 characters under class
folders, .jpg + .cls) and, when the webdataset package is installed, one more training shard by
its ShardWriter (.png + .json). `ruche index` indexes them (again: every shard reused), and
`ruche train --data 'shards/train-{000000..000002}.tar' --val-data 'shards/val-000000.tar'` trains
on 2 ranks; a second directory without index.tsv is indexed on first use by train itself.

usage: foreign_shards.py RUCHE_BINARY MPIEXEC WORKDIR [CASE ...]
"""
import io
import json
import shutil
import subprocess
import tarfile

import numpy as np
from PIL import Image

from dp_common import ENV, RUCHE, WORK, check, finish, flags, train

rng = np.random.default_rng(7)
CLASSES = ("n01443537", "n01484850", "n01491361")


def image(c, fmt):
    h, w = (int(v) for v in rng.integers(40, 90, 2))
    pixels = rng.integers(0, 90, (h, w, 3)) + np.array([80 * (c == 0), 80 * (c == 1),
                                                        80 * (c == 2)])
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format=fmt)
    return out.getvalue()


def tarfile_shard(path, n, tag):
    """Python's default format (PAX), long keys under class folders, .jpg + .cls."""
    with tarfile.open(path, "w") as t:
        for i in range(n):
            c = i % 3
            key = f"{CLASSES[c]}/{tag}_{i:04d}_" + "x" * 110
            for ext, data in (("jpg", image(c, "JPEG")), ("cls", str(c).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))


shards = WORK / "wds_shards"
shutil.rmtree(shards, ignore_errors=True)
shards.mkdir(parents=True)
tarfile_shard(shards / "train-000000.tar", 12, "a")
tarfile_shard(shards / "train-000001.tar", 12, "b")
tarfile_shard(shards / "val-000000.tar", 6, "v")
train_shards = 2
try:
    import webdataset as wds
    with wds.ShardWriter(str(shards / "train-%06d.tar"), maxcount=1000, start_shard=2,
                         verbose=0) as w:
        for i in range(12):
            w.write({"__key__": f"w{i:04d}", "png": image(i % 3, "PNG"),
                     "json": json.dumps({"label": i % 3}).encode()})
    train_shards = 3
    check((shards / "train-000002.tar").exists(), "webdataset's ShardWriter wrote a shard")
except ImportError:
    print("skip  webdataset is not installed: its ShardWriter's shard is left out", flush=True)
(shards / "classes.txt").write_text("\n".join(CLASSES) + "\n")

p = subprocess.run([RUCHE, "index", str(shards), "--workers", "2"], capture_output=True,
                   text=True, env=ENV, timeout=120)
n_train = 12 * train_shards
check(p.returncode == 0 and f"{train_shards + 1} shards (0 unchanged" in p.stdout
      and f"{n_train + 6} samples" in p.stdout, f"ruche index indexes them ({p.stdout.strip()})")
p = subprocess.run([RUCHE, "index", str(shards)], capture_output=True, text=True, env=ENV,
                   timeout=120)
check(p.returncode == 0 and f"({train_shards + 1} unchanged since the last index, reused)"
      in p.stdout, "a second ruche index reads no shard again")

net = WORK / "wds_net.prototxt"
net.write_text("""
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 8 stride: 8 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: AVE kernel_size: 4 stride: 4 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
""")
last = f"{train_shards - 1:06d}"
COMMON = {"--data": str(shards / f"train-{{000000..{last}}}.tar"),
          "--val-data": str(shards / "val-000000.tar"), "--net": str(net),
          "--batch-size": "4", "--epochs": "2", "--log-every": "1", "--seed": "3",
          "--data-workers": "2", "--no-checkpoint": True}
p = train(2, "wds_run", flags(COMMON))
check(p.returncode == 0 and f"data: shards, {n_train} train / 6 val" in p.stdout,
      f"2 ranks train on {n_train} samples of shards ruche did not write, validating on 6")
check((WORK / "wds_run" / "model.npz").exists(), "the run ends with its weights")

# A copy without index.tsv: train indexes it on first use and says so, with the time it took.
bare = WORK / "wds_bare"
shutil.rmtree(bare, ignore_errors=True)
bare.mkdir()
for f in shards.glob("*.tar"):
    shutil.copy(f, bare / f.name)
p = train(2, "wds_bare_run", flags(COMMON, data=str(bare), val_data=str(bare), epochs=1))
check(p.returncode == 0 and "it has no index.tsv; indexing its shards now" in p.stdout
      and "data: index: " in p.stdout and (bare / "index.tsv").exists(),
      "train --data DIR without index.tsv indexes it first (2 ranks) and says how long it took")
check(p.stdout.count("indexing its shards now") == 1, "only rank 0 says so")
finish()
