#!/usr/bin/env python3
"""Figures of `ruche data describe`, `ruche compare` and `ruche visualize` (matplotlib, as
plot_run.py draws `ruche plot`'s).

  figures.py grid NPZ JSON OUT.png UNITS      samples per class (NPZ x, y; JSON class_names);
                                              UNITS pixels ([0, 1]) or values (scaled per image)
  figures.py compare JSON OUT.png             validation accuracy and loss of every run of
                                              compare.json against epochs; seeds: mean and band
  figures.py visualize NPZ JSON DIR           DIR/filters.png, DIR/activations-<layer>.png,
                                              DIR/saliency.png from visualize.npz and .json

Prints the path of every file written, one a line. Exit 2 with one line for bad input.
"""
import json
import math
import os
import sys

import numpy as np

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402


def fail(message):
    print(f"figures.py: {message}", file=sys.stderr)
    sys.exit(2)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: {e}")


def to_image(sample, scale_each):
    """[C, H, W] (or [D]) -> something imshow draws: HxW gray or HxWx3 RGB in [0, 1]."""
    a = np.asarray(sample, dtype=np.float64)
    if a.ndim == 1:  # a vector: a square-ish strip
        side = int(math.ceil(math.sqrt(a.size)))
        a = np.pad(a, (0, side * side - a.size)).reshape(1, side, side)
    if scale_each:
        lo, hi = np.nanmin(a), np.nanmax(a)
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    a = np.clip(a, 0, 1)
    if a.shape[0] == 3:
        return a.transpose(1, 2, 0)
    return a.mean(axis=0)


def save(fig, out):
    fig.savefig(out, dpi=80)
    plt.close(fig)
    try:  # a palette PNG: a third of the bytes, the same picture to the eye
        from PIL import Image
        Image.open(out).convert("RGB").quantize(colors=64).save(out, optimize=True)
    except ImportError:
        pass
    print(out)


def grid(npz, js, out, units):
    data = np.load(npz)
    x, y = data["x"], data["y"]
    names = load_json(js).get("class_names", [])
    classes = sorted(set(int(c) for c in y))
    cols = max(int((y == c).sum()) for c in classes)
    fig, axes = plt.subplots(len(classes), cols, figsize=(cols * 0.9 + 1.6, len(classes) * 0.9),
                             squeeze=False)
    for r, c in enumerate(classes):
        rows = np.flatnonzero(y == c)
        for k in range(cols):
            ax = axes[r][k]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if k < len(rows):
                ax.imshow(to_image(x[rows[k]], units != "pixels"), cmap="gray", vmin=0, vmax=1)
        name = names[c] if c < len(names) else str(c)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("training samples per class", fontsize=10)
    fig.tight_layout()
    save(fig, out)
    if "pair_a" in data:
        pairs(data, load_json(js), os.path.join(os.path.dirname(out) or ".", "duplicates.png"),
              units)


def pairs(data, report, out, units):
    """Example duplicate pairs: one row per check that found some, each pair side by side."""
    a, b, check = data["pair_a"], data["pair_b"], data["pair_check"]
    checks = sorted(set(int(c) for c in check))
    cols = 2 * max(int((check == c).sum()) for c in checks)
    fig, axes = plt.subplots(len(checks), cols, figsize=(cols * 1.0 + 1.8, len(checks) * 1.25),
                             squeeze=False)
    for r, c in enumerate(checks):
        d = report["duplicates"][c]
        rows = np.flatnonzero(check == c)
        for k in range(cols):
            ax = axes[r][k]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if k // 2 >= len(rows):
                continue
            i, j = d["examples"][k // 2]
            img = a[rows[k // 2]] if k % 2 == 0 else b[rows[k // 2]]
            ax.imshow(to_image(img, units != "pixels"), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{d['a']}[{i}]" if k % 2 == 0 else f"{d['b']}[{j}]", fontsize=7)
        where = f"{d['a']} within itself" if d["a"] == d["b"] else f"{d['a']} / {d['b']}"
        axes[r][0].set_ylabel(f"{d['kind']}\n{where}\n({d['samples']})", rotation=0,
                              ha="right", va="center", fontsize=8)
    fig.suptitle(f"duplicate examples (near: 256-bit dHash within "
                 f"{report.get('near_threshold')} bits)", fontsize=10)
    fig.tight_layout()
    save(fig, out)


def read_metrics(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    fail(f"{path}: a line that is not JSON")
    return out


def val_curve(run_dir, key):
    per_epoch = {}
    for r in read_metrics(os.path.join(run_dir, "metrics.jsonl")):
        if r.get("split") == "val" and r.get(key) is not None and "epoch" in r:
            per_epoch[r["epoch"]] = r[key]  # a resumed epoch: the last record wins
    epochs = sorted(per_epoch)
    return epochs, [per_epoch[e] for e in epochs]


def compare(js, out):
    report = load_json(js)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "acc", "validation accuracy"),
                           (axes[1], "loss", "validation loss")):
        for i, cfg in enumerate(report["configs"]):
            color = f"C{i % 10}"
            curves = [val_curve(r["dir"], key) for r in cfg["runs"]]
            curves = [c for c in curves if c[0]]
            if not curves:
                continue
            if len(curves) == 1:
                ax.plot(curves[0][0], curves[0][1], "o-", color=color, markersize=3,
                        label=cfg["name"])
                continue
            n = min(len(c[0]) for c in curves)  # the epochs every seed reached
            epochs = curves[0][0][:n]
            ys = np.array([c[1][:n] for c in curves], dtype=float)
            mean, std = ys.mean(axis=0), ys.std(axis=0, ddof=1)
            ax.plot(epochs, mean, "o-", color=color, markersize=3,
                    label=f"{cfg['name']} (mean of {len(curves)} seeds)")
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, out)


def tiles(images, titles, suptitle, out, cmap="gray", cols=None, scale_each=True):
    n = len(images)
    cols = cols or min(n, 8)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.2 + 0.4), squeeze=False)
    for k in range(rows * cols):
        ax = axes[k // cols][k % cols]
        ax.axis("off")
        if k < n:
            img = images[k]
            if scale_each:
                lo, hi = float(np.min(img)), float(np.max(img))
                img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if titles:
                ax.set_title(titles[k], fontsize=7)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    save(fig, out)


def visualize(npz, js, out_dir):
    data = np.load(npz)
    meta = load_json(js)
    names = meta.get("class_names", [])
    name = lambda c: names[c] if 0 <= c < len(names) else str(c)  # noqa: E731
    if "filters" in data:
        w = data["filters"]  # [O, C, kh, kw]
        imgs = [f.transpose(1, 2, 0) if f.shape[0] == 3 else f.mean(axis=0) for f in w]
        tiles(imgs, None, f"first convolution '{meta.get('first_conv')}': {w.shape[0]} filters "
              f"{w.shape[2]}x{w.shape[3]} (each scaled to its range)",
              os.path.join(out_dir, "filters.png"))
    label, pred = meta.get("sample_label", 0), meta.get("sample_predicted", 0)
    for i, layer in enumerate(meta.get("conv_layers", [])):
        key = f"act_{i}"
        if key not in data:
            continue
        a = data[key]
        a = a if a.ndim == 3 else a.reshape(a.shape[0], 1, -1)
        shown = a[:64]
        tiles(list(shown), None, f"'{layer}' output, {a.shape[0]} channels"
              f"{' (first 64)' if a.shape[0] > 64 else ''}, for one {meta.get('split')} sample "
              f"({name(label)}, predicted {name(pred)})",
              os.path.join(out_dir, f"activations-{layer}.png"), cmap="viridis")
    x, s = data["inputs"], data["saliency"]
    labels, predicted = data["labels"], data["predicted"]
    if len(x):
        imgs, titles = [], []
        for k in range(len(x)):
            img = to_image(x[k], True)
            sal = np.abs(s[k]).max(axis=0) if s[k].ndim == 3 else np.abs(s[k])
            if sal.ndim == 1:
                sal = to_image(sal, True)
            imgs += [img, sal]
            ok = "" if labels[k] == predicted[k] else f" (as {name(int(predicted[k]))})"
            titles += [f"{name(int(labels[k]))}{ok}", "saliency"]
        tiles(imgs, titles, "class saliency |d score / d input| (Simonyan et al.), "
              f"{meta.get('split')} samples", os.path.join(out_dir, "saliency.png"),
              cols=min(len(imgs), 8), cmap="gray")


def main(argv):
    if len(argv) >= 5 and argv[0] == "grid":
        grid(*argv[1:5])
    elif len(argv) >= 3 and argv[0] == "compare":
        compare(argv[1], argv[2])
    elif len(argv) >= 4 and argv[0] == "visualize":
        visualize(argv[1], argv[2], argv[3])
    else:
        fail(__doc__.strip().splitlines()[0] + ": see the usage at the top of the script")


if __name__ == "__main__":
    main(sys.argv[1:])
