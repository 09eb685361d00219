"""Writes the seed corpora of the fuzz targets, tests/fuzz/corpus/<target>/, from the fixtures
our tests use: the examples' prototxts, numpy's npy/npz (as tests/data/make_npz_fixtures.py),
IDX and CIFAR records as the data tests write them, tar shards as Python's tarfile and ruche
convert write them (ustar, PAX, GNU long names), a tiny training run's checkpoint and TensorBoard
events, and small JPEGs and PNGs through PIL. Each file is a few KB at most.

usage: make_corpus.py RUCHE_BINARY [OUT_DIR]   (RUCHE_PYTHON: numpy and PIL)
The corpus is committed; run this again only to change it. Files are named by content hash."""
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUCHE = sys.argv[1]
OUT = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests/fuzz/corpus"
MAX_BYTES = 8192


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= MAX_BYTES, (target, len(data))
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def npy_bytes(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def prototxts():
    for path in sorted(ROOT.glob("examples/*/*.prototxt")):
        text = path.read_text()
        target = "prototxt_solver" if "solver" in path.name else "prototxt_net"
        if len(text) > MAX_BYTES:  # resnet50: its first layers
            text = text[:text.rfind("\nlayer", 0, MAX_BYTES)] + "\n"
        put(target, text)
    put("prototxt_net", 'name: "tiny"\nlayer { name: "data" type: "Input" top: "data" top: "label"'
        ' input_param { dim: 1 dim: 2 dim: 2 } }\nlayer { name: "fc" type: "InnerProduct"'
        ' bottom: "data" top: "fc" inner_product_param { num_output: 2 } param { lr_mult: 0 } }\n'
        '# a comment\nlayer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" }\n')
    for policy in ["fixed", "step", "multistep", "exp", "poly", "cosine"]:
        extra = {"step": "stepsize: 10", "multistep": "stepvalue: 5 stepvalue: 50",
                 "poly": "power: 2 min_lr: 0.001", "cosine": "min_lr: 0.0"}.get(policy, "")
        put("prototxt_solver", f'type: "sgd" base_lr: 0.1 momentum: 0.9 lr_policy: "{policy}"\n'
            f'gamma: 0.5 {extra}\nwarmup_steps: 3 weight_decay: 0.0005\n')
    put("prototxt_solver", 'lr_policy: "multistep" stepvalue_epochs: 1.5 stepvalue_epochs: 3\n'
        'warmup_epochs: 0.5 type: "adamw" base_lr: 0.001\n')


def arrays():
    fixtures = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, -2, 3], np.int32),
                np.arange(4, dtype=np.int64), np.arange(12, dtype=np.uint8).reshape(3, 2, 2),
                np.float32(2.5), np.zeros((0, 3), np.float32), np.arange(4, dtype=">f4")]
    for a in fixtures:
        put("npy", npy_bytes(a))
    put("npy", npy_bytes(np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))))
    for path in sorted(ROOT.glob("tests/data/*.npz")):
        put("npz", path.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        p = pathlib.Path(tmp) / "a.npz"
        np.savez(p, x_train=np.zeros((2, 1, 2, 2), np.float32), y_train=np.array([0, 1]))
        put("npz", p.read_bytes())
        np.savez_compressed(p, w=np.arange(8, dtype=np.float32), b=np.ones(2, np.float32))
        put("npz", p.read_bytes())


def idx(magic_dims, dims, data):
    return struct.pack(">I", 0x800 | magic_dims) + b"".join(struct.pack(">I", d) for d in dims) + data


def images():
    images3 = idx(3, [2, 3, 3], bytes(range(18)))
    labels = idx(1, [2], bytes([0, 1]))
    for b in [images3, labels, idx(3, [0, 28, 28], b"")]:
        put("idx", b)
        put("idx", gzip.compress(b, mtime=0))
    put("cifar", bytes([3]) + bytes(i % 251 for i in range(3072)))
    put("cifar", bytes([1, 7]) + bytes(i % 13 for i in range(3072)))


def jpegs():
    out = []
    grad = Image.frombytes("RGB", (16, 12), bytes((x * 16 + y * 8 + c * 60) % 256
                                                  for y in range(12) for x in range(16)
                                                  for c in range(3)))
    for kw in [{}, {"progressive": True}, {"subsampling": 0}, {"quality": 30}]:
        b = io.BytesIO()
        grad.save(b, "JPEG", **kw)
        out.append(b.getvalue())
    for mode in ["L", "CMYK"]:
        b = io.BytesIO()
        grad.convert(mode).save(b, "JPEG")
        out.append(b.getvalue())
    for b in out:
        put("jpeg", b)
    pngs = []
    for mode in ["RGB", "L", "P", "RGBA", "I;16"]:
        b = io.BytesIO()
        img = grad.convert("L").convert("I;16") if mode == "I;16" else grad.convert(mode)
        img.save(b, "PNG")
        pngs.append(b.getvalue())
    for b in pngs:
        put("png", b)
    return out[0], pngs[0]


def tars(jpeg, png):
    def shard(fmt, members):
        b = io.BytesIO()
        with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
            for name, data in members:
                info = tarfile.TarInfo(name)
                if data is None:
                    info.type = tarfile.DIRTYPE
                    t.addfile(info)
                else:
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
        data = b.getvalue().rstrip(b"\0")  # tarfile pads to a 10 KiB record: two end blocks
        return data + bytes(-len(data) % 512 + 1024)

    put("tar", shard(tarfile.USTAR_FORMAT, [("a/000.jpg", jpeg[:200]), ("a/000.cls", b"3\n"),
                                           ("a/001.png", png[:100]), ("a/001.txt", b"dog")]))
    put("tar", shard(tarfile.PAX_FORMAT, [("d", None), ("k" * 120 + ".json", b'{"label": 2}'),
                                         ("k" * 120 + ".jpg", b"\xff\xd8")]))
    put("tar", shard(tarfile.GNU_FORMAT, [("g" * 130 + ".cls", b"1"), ("x.txt", b"cat\n")]))
    put("tar", shard(tarfile.USTAR_FORMAT, [("__meta__.json", b"{}"), ("s.json", b'{"label":"cat"}')]))
    put("shard_index", "# ruche shard index 1: split, file, samples, data end, byte offset of each"
        " sample\ntrain\ttrain-000000.tar\t3\t4608\t0\t1536\t3072\n"
        "val\tval-000000.tar\t1\t1024\t0\n")
    put("shard_index", "train\tt.tar\t0\t0\n\n#\n")


def run_artifacts():
    """A tiny ruche train run (one Input of 2x2 features, an InnerProduct to 2 classes): its
    checkpoint (manifest.pb + shard, as the checkpoint target takes them) and its event file."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        rng = np.random.default_rng(1)
        x = rng.normal(size=(16, 1, 2, 2)).astype(np.float32)
        y = (x.sum(axis=(1, 2, 3)) > 0).astype(np.int64)
        np.savez(tmp / "d.npz", x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
        (tmp / "net.prototxt").write_text(
            'layer { name: "data" type: "Input" top: "data" top: "label" }\n'
            'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
            'inner_product_param { num_output: 2 } }\n'
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" '
            'top: "loss" }\n')
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [RUCHE, "train", "--out", str(tmp / "run"), "--data", str(tmp / "d.npz"),
               "--net", str(tmp / "net.prototxt"), "--max-steps", "4", "--batch-size", "4",
               "--log-every", "2", "--checkpoint-every-steps", "2", "--val-fraction", "0.25",
               "--device", "cpu"]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        for ckpt in sorted((tmp / "run/ckpt").glob("step-*")):
            manifest = (ckpt / "manifest.pb").read_bytes()
            put("manifest", manifest)
            shards = sorted(ckpt.glob("shard-*.bin"))
            shard = b"".join(s.read_bytes() for s in shards)
            put("checkpoint", struct.pack("<I", len(manifest)) + manifest + shard)
        for events in (tmp / "run").glob("events.out.tfevents.*"):
            data = events.read_bytes()
            # Whole records only, up to the size limit.
            at = 0
            while at < len(data):
                (length,) = struct.unpack_from("<Q", data, at)
                if at + 16 + length > MAX_BYTES:
                    break
                at += 16 + length
            put("tfevents", data[:at])


def main():
    for d in ["npy", "npz", "idx", "cifar", "tar", "shard_index", "manifest", "checkpoint",
              "tfevents", "jpeg", "png", "prototxt_net", "prototxt_solver"]:
        shutil.rmtree(OUT / d, ignore_errors=True)
    prototxts()
    arrays()
    images()
    jpeg, png = jpegs()
    tars(jpeg, png)
    run_artifacts()
    for d in sorted(OUT.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


main()
