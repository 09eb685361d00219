#!/usr/bin/env python3
"""ImageNet-style input end to end: an ImageFolder of JPEGs converted by `ruche convert
imagefolder` into WebDataset shards, trained on from the shards under mpirun, a crash mid-epoch
resumed from the checkpoint's shard position bit-identically, and the same checkpoint resumed on
other world sizes (the rest of the epoch re-split over the new ranks).

usage: shards.py RUCHE_BINARY MPIEXEC WORKDIR [CASE ...]
"""
import shutil
import subprocess

import numpy as np
from PIL import Image

from dp_common import ENV, RUCHE, WORK, check, finish, flags, same_bits, train, want, weights

# Three classes of 16 training and 4 validation JPEGs of assorted sizes, told apart by colour.
rng = np.random.default_rng(5)
folder = WORK / "imagefolder"
shutil.rmtree(folder, ignore_errors=True)
for split, n in (("train", 16), ("val", 4)):
    for c, wnid in enumerate(("n01443537", "n01484850", "n01491361")):
        (folder / split / wnid).mkdir(parents=True)
        for i in range(n):
            h, w = (int(v) for v in rng.integers(120, 260, 2))
            pixels = rng.integers(0, 90, (h, w, 3)) + np.array([80 * (c == 0), 80 * (c == 1),
                                                                80 * (c == 2)])
            Image.fromarray(pixels.astype(np.uint8)).save(folder / split / wnid / f"{i}.JPEG")

shards = WORK / "shards"
shutil.rmtree(shards, ignore_errors=True)
p = subprocess.run([RUCHE, "convert", "imagefolder", str(folder), "-o", str(shards),
                    "--shard-mb", "1"], capture_output=True, text=True, env=ENV, timeout=120)
check(p.returncode == 0 and (shards / "index.tsv").exists(),
      f"convert writes shards and their index ({p.stderr.strip()[-300:]})")

# A net small enough for 224 px crops on two cores: a strided conv, a pool, a classifier.
net = WORK / "shards_net.prototxt"
net.write_text("""
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 8 stride: 8 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: AVE kernel_size: 7 stride: 7 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
""")
# 48 training samples in global batches of 8 on 2 ranks: 6 steps an epoch; 10 steps cross two.
COMMON = {"--data": str(shards), "--net": str(net), "--batch-size": "4", "--max-steps": "10",
          "--log-every": "1", "--seed": "3", "--data-workers": "2",
          "--checkpoint-every-steps": "2", "--keep-checkpoints": "0"}

if want("train"):
    p = train(2, "ref", flags(COMMON))
    check(p.returncode == 0 and "data: shards, 48 train / 12 val" in p.stdout,
          "2 ranks train from shards, validating on the val shards")
    ref = weights("ref")

    # A crash after step 8 (mid-epoch 2); --resume auto continues from the checkpoint at step 8
    # with the shards' saved position and must end with the same bits.
    p = train(2, "crash", flags(COMMON), env={"RUCHE_FAULT": "crash_at_step:9@1"})
    check(p.returncode != 0, "the injected crash ends the first run")
    p = train(2, "crash", flags(COMMON, resume="auto"))
    check(p.returncode == 0 and "resumed from" in p.stdout and same_bits(weights("crash"), ref),
          "a mid-epoch resume from shards at the same world size is bit-identical")

    # The same checkpoint on 1 and 3 ranks: the rest of the epoch is re-split over the new ranks.
    for ranks in (1, 3):
        out = f"reshard{ranks}"
        shutil.rmtree(WORK / out, ignore_errors=True)
        shutil.copytree(WORK / "crash" / "ckpt", WORK / out / "ckpt")
        ckpt = sorted((WORK / out / "ckpt").glob("step-*"))[1]  # step 4: epoch 1, mid-way
        p = train(ranks, out, flags(COMMON, resume=str(ckpt)))
        check(p.returncode == 0 and "resumed from" in p.stdout,
              f"a shard checkpoint of 2 ranks resumes on {ranks} rank(s)")

finish()
