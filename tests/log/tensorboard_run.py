#!/usr/bin/env python3
"""A real training run's TensorBoard event file, read back: with tensorboard's EventAccumulator
where the package imports, else with this test's own TFRecord + protobuf reader. Tags, steps and
values must match metrics.jsonl (scalars), model.npz (the last weight norms and histograms), and
the confusion matrix must be a PNG with a darker diagonal; --no-tensorboard writes no file.

usage: tensorboard_run.py RUCHE_BINARY WORKDIR
"""
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, finish  # noqa: E402  (tests/support/checks.py)

RUCHE, WORK = sys.argv[1], Path(sys.argv[2])
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)


def write_data(path, n_train, n_test):
    """Four learnable classes of 1x28x28 images: a bright quadrant per class, plus noise."""
    rng = np.random.default_rng(7)

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(0, 0.5, (n, 1, 28, 28)).astype(np.float32)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 0, r * 14:(r + 1) * 14, q * 14:(q + 1) * 14] += 1.0
        return x, y.astype(np.int64)

    x, y = make(n_train)
    xt, yt = make(n_test)
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)


def train(out, *more):
    cmd = [RUCHE, "train", "--model", "mlp", "--data", str(WORK / "data.npz"), "--out",
           str(WORK / out), "--threads", "1", "--batch-size", "32", "--val-fraction", "0.25",
           "--no-checkpoint", "--seed", "3", *more]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        print(" ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
    return p


# ---- our own reader: TFRecord framing (crc32c masked) and the protobuf wire format ----
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def fields(buf):
    """(field number, wire type, value) of a protobuf message."""
    at = 0

    def varint():
        nonlocal at
        v = shift = 0
        while True:
            b = buf[at]
            at += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while at < len(buf):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            yield num, wire, varint()
        elif wire == 1:
            yield num, wire, buf[at:at + 8]
            at += 8
        elif wire == 5:
            yield num, wire, buf[at:at + 4]
            at += 4
        elif wire == 2:
            n = varint()
            yield num, wire, buf[at:at + n]
            at += n
        else:
            raise ValueError(f"wire type {wire}")


def read_events(path):
    """Events as dicts: step, file_version, and per summary value (tag, kind, payload)."""
    data, at, events = Path(path).read_bytes(), 0, []
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        (length_crc,) = struct.unpack_from("<I", data, at + 8)
        assert masked(crc32c(data[at:at + 8])) == length_crc, f"length crc at {at}"
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack_from("<I", data, at + 12 + length)
        assert masked(crc32c(body)) == body_crc, f"data crc at {at}"
        at += 16 + length
        event = {"step": 0, "values": []}
        for num, _, v in fields(body):
            if num == 2:
                event["step"] = v
            elif num == 3:
                event["file_version"] = v.decode()
            elif num == 5:
                for _, _, value in fields(v):  # Summary.value
                    tag, kind, payload = None, None, None
                    for f, _, x in fields(value):
                        if f == 1:
                            tag = x.decode()
                        elif f == 2:
                            kind, payload = "scalar", struct.unpack("<f", x)[0]
                        elif f == 4:
                            kind, payload = "image", {k: x for k, _, x in fields(x)}
                        elif f == 5:
                            h = {}
                            for k, wire, y in fields(x):
                                if k <= 5:
                                    h[k] = struct.unpack("<d", y)[0]
                                else:  # packed doubles
                                    h.setdefault(k, []).extend(struct.unpack(f"<{len(y) // 8}d", y))
                            kind, payload = "histogram", h
                    event["values"].append((tag, kind, payload))
        events.append(event)
    return events


class OwnReader:
    def __init__(self, path):
        self.events = read_events(path)
        self.first = self.events[0].get("file_version")

    def of(self, kind):
        out = {}
        for e in self.events:
            for tag, k, payload in e["values"]:
                if k == kind:
                    out.setdefault(tag, []).append((e["step"], payload))
        return out

    def scalars(self):
        return self.of("scalar")

    def histograms(self):  # (step, num, sum)
        return {t: [(s, h.get(3, 0), h.get(4, 0)) for s, h in v] for t, v in self.of("histogram").items()}

    def images(self):  # (step, png bytes)
        return {t: [(s, im[4]) for s, im in v] for t, v in self.of("image").items()}


class TensorBoardReader:
    def __init__(self, path):
        from tensorboard.backend.event_processing import event_accumulator as ea
        self.acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0,
                                                                  ea.IMAGES: 0})
        self.acc.Reload()
        self.first = f"brain.Event:{self.acc.file_version:g}"  # it keeps the number only
        self.tags = self.acc.Tags()

    def scalars(self):
        return {t: [(e.step, e.value) for e in self.acc.Scalars(t)] for t in self.tags["scalars"]}

    def histograms(self):
        return {t: [(e.step, e.histogram_value.num, e.histogram_value.sum)
                    for e in self.acc.Histograms(t)] for t in self.tags["histograms"]}

    def images(self):
        return {t: [(e.step, e.encoded_image_string) for e in self.acc.Images(t)]
                for t in self.tags["images"]}


write_data(WORK / "data.npz", 400, 100)
# 300 training samples in batches of 32: 9 steps an epoch, 18 in all; validation after each.
p = train("run", "--epochs", "2", "--log-every", "3", "--tb-histograms", "6")
check(p.returncode == 0, "ruche train with TensorBoard on")
files = sorted((WORK / "run").glob("events.out.tfevents.*"))
check(len(files) == 1 and files[0].name.endswith(".ruche"),
      f"one event file events.out.tfevents.<time>.<host>.<pid>.ruche ({[f.name for f in files]})")
path = files[0]
readers = [("own reader", OwnReader(path))]
try:
    readers.append(("tensorboard EventAccumulator", TensorBoardReader(path)))
except ImportError as e:
    print(f"tensorboard not importable ({e}): read with our own reader only")

records = [json.loads(line) for line in (WORK / "run" / "metrics.jsonl").read_text().splitlines()]
weights = np.load(WORK / "run" / "model.npz")
for name, r in readers:
    check(r.first == "brain.Event:2", f"{name}: file_version brain.Event:2 first ({r.first})")
    scalars = r.scalars()
    for split, keys in (("train", ("loss", "acc", "lr", "img_per_s")), ("val", ("loss", "acc")),
                        ("test", ("loss", "acc"))):
        want = [rec for rec in records if rec["split"] == split]
        for key in keys:
            got = scalars.get(f"{split}/{key}", [])
            same = len(got) == len(want) > 0 and all(
                s == rec["step"] and abs(v - rec[key]) <= 1e-5 * max(1, abs(rec[key]))
                for (s, v), rec in zip(got, want))
            check(same, f"{name}: {split}/{key} at the steps and values of metrics.jsonl "
                        f"({len(got)} events, {len(want)} records)")
    params = [k for k in weights.files]
    last = max(rec["step"] for rec in records if rec["split"] == "train")
    ok = bool(params)
    for k in params:
        w = scalars.get(f"weight_norm/{k}", [])
        g = scalars.get(f"grad_norm/{k}", [])
        ok = ok and len(w) == 6 and len(g) == 6 and w[-1][0] == last and all(v > 0 for _, v in g)
        ok = ok and abs(w[-1][1] - np.linalg.norm(weights[k])) <= 1e-5 * np.linalg.norm(weights[k])
    check(ok, f"{name}: weight_norm/ and grad_norm/ of each of {params} every 3 steps; the last "
              "weight norms are model.npz's")
    hist = r.histograms()
    ok = bool(params)
    for k in params:
        w, g = hist.get(f"weights/{k}", []), hist.get(f"grads/{k}", [])
        ok = ok and [s for s, *_ in w] == [6, 12, 18] and [s for s, *_ in g] == [6, 12, 18]
        ok = ok and w[-1][1] == weights[k].size and abs(w[-1][2] - weights[k].sum()) <= \
            1e-4 * max(1, np.abs(weights[k]).sum())
    check(ok, f"{name}: weights/ and grads/ histograms at steps 6, 12, 18; the last counts and "
              "sums are model.npz's")
    images = r.images().get("val/confusion_matrix", [])
    ok = [s for s, _ in images] == [9, 18]
    if ok:
        im = np.asarray(Image.open(io.BytesIO(images[-1][1])).convert("RGB")).astype(float)
        cell = im.shape[0] // 4
        red = im[cell // 2::cell, cell // 2::cell, 0]  # one pixel per cell, 4 x 4
        ok = im.shape == (256, 256, 3) and red.shape == (4, 4) and \
            np.diag(red).mean() < red[~np.eye(4, dtype=bool)].mean()
    check(ok, f"{name}: val/confusion_matrix after each validation, a 256x256 RGB PNG whose "
              "diagonal is darker")

p = train("off", "--max-steps", "2", "--no-tensorboard")
check(p.returncode == 0 and not list((WORK / "off").glob("events.out.tfevents.*")),
      "--no-tensorboard writes no event file")

finish()
