#!/usr/bin/env python3
"""Figures of a ruche run, for a report (run by `ruche plot` and `ruche lr-find`).

  plot_run.py run RUN OUT.png      curves of RUN/metrics.jsonl (loss, accuracy, learning rate
                                   against epochs) in OUT.png; beside it confusion.png from
                                   RUN/eval-test.json (else eval-val.json) and roc.png from
                                   RUN/roc-test.csv (else roc-val.csv) when they exist
  plot_run.py lr-find JSON OUT.png the learning-rate range test of `ruche lr-find`

Prints the path of every file written, one a line. Exit 2 with one line for bad input.
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402


def fail(message):
    print(f"plot_run.py: {message}", file=sys.stderr)
    sys.exit(2)


def read_metrics(path):
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                fail(f"{path}:{number}: not a JSON object ({e.msg})")
    return records


def steps_per_epoch(records):
    # A validation record is written at the end of its epoch: step = epoch * steps per epoch.
    for r in records:
        if r.get("split") == "val" and r.get("epoch", 0) > 0 and r.get("step", 0) > 0:
            return r["step"] / r["epoch"]
    # Otherwise the training records bound it from below (step <= epoch * steps per epoch).
    bounds = [r["step"] / r["epoch"] for r in records
              if r.get("split") == "train" and r.get("epoch", 0) > 0 and "step" in r]
    return max(bounds) if bounds else None


def series(records, split, key, per_epoch):
    xs, ys = [], []
    for r in records:
        if r.get("split") != split or key not in r or "step" not in r:
            continue
        if r[key] is None or r[key] != r[key]:  # null or NaN (a diverged step)
            continue
        xs.append(r["step"] / per_epoch if per_epoch else r["step"])
        ys.append(r[key])
    return xs, ys


def plot_curves(records, out):
    per_epoch = steps_per_epoch(records)
    xlabel = "epoch" if per_epoch else "step"
    panels = [("loss", "loss"), ("acc", "accuracy"), ("lr", "learning rate")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (key, title) in zip(axes, panels):
        drawn = False
        for split, style in (("train", "-"), ("val", "o-")):
            xs, ys = series(records, split, key, per_epoch)
            if xs:
                ax.plot(xs, ys, style, label=split, markersize=3)
                drawn = True
        if key in ("loss", "acc"):  # --ema: the averaged weights on the same split
            xs, ys = series(records, "val", "ema_" + key, per_epoch)
            if xs:
                ax.plot(xs, ys, "^--", label="val (ema)", markersize=3)
        xs, ys = series(records, "test", key, per_epoch)
        if xs:
            ax.plot(xs[-1:], ys[-1:], "k*", markersize=10, label=f"test {ys[-1]:.4g}")
            drawn = True
        if key == "acc":
            xs, ys = series(records, "val", "top5", per_epoch)
            if xs:
                ax.plot(xs, ys, "s--", label="val top-5", markersize=3)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if drawn and key != "lr":
            ax.legend()
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_confusion(report, out):
    counts = report["confusion_matrix"]["counts"]
    n = len(counts)
    names = [c.get("name") or str(c.get("class")) for c in report.get("per_class", [])]
    if len(names) != n:
        names = [str(i) for i in range(n)]
    size = max(4.5, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:  # the counts themselves, while they still fit
        peak = max(max(row) for row in counts) or 1
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i][j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i][j] > peak / 2 else "black")
    ax.set_title(f"confusion matrix, {report.get('split', '?')} split "
                 f"(accuracy {100 * report.get('accuracy', 0):.2f}%)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_roc(path, split, auc, out):
    fpr, tpr = [], []
    with open(path) as f:
        for row in csv.DictReader(f):
            fpr.append(float(row["fpr"]))
            tpr.append(float(row["tpr"]))
    if not fpr:
        fail(f"{path}: no ROC points")
    fig, ax = plt.subplots(figsize=(5, 5))
    label = f"AUC {auc:.4f}" if auc is not None else "ROC"
    ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], "k:", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC curve of class 1, {split} split")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_reconstructions(path, out):
    """RUN/reconstructions.npz (the last validation's first samples): target | reconstruction |
    absolute error, a row per sample."""
    import numpy as np
    arrays = np.load(path)
    target, recon = arrays["target"], arrays["reconstruction"]
    step = int(arrays["step"][0]) if "step" in arrays else None
    n = target.shape[0]
    if n == 0 or target.ndim != 4:
        return False

    def image(a):  # [C, H, W] -> H x W (gray) or H x W x 3, clipped to [0, 1]
        a = np.clip(a, 0, 1)
        return a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))

    fig, axes = plt.subplots(n, 3, figsize=(4.5, 1.5 * n + 0.4), squeeze=False)
    for i in range(n):
        for j, (a, name) in enumerate(((target[i], "input"), (recon[i], "reconstruction"),
                                       (np.abs(recon[i] - target[i]), "|error|"))):
            ax = axes[i][j]
            ax.imshow(image(a), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle("validation reconstructions" + (f" (step {step})" if step is not None else ""),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


def plot_run(run, out):
    metrics = os.path.join(run, "metrics.jsonl")
    if not os.path.isfile(metrics):
        fail(f"{metrics}: no such file (is {run} a ruche run directory?)")
    records = read_metrics(metrics)
    if not any(r.get("split") in ("train", "val") for r in records):
        fail(f"{metrics}: no train or val records to plot")
    plot_curves(records, out)
    print(out)
    where = os.path.dirname(os.path.abspath(out))
    recon = os.path.join(run, "reconstructions.npz")
    if os.path.isfile(recon):
        target = os.path.join(where, "reconstructions.png")
        if plot_reconstructions(recon, target):
            print(target)
    for split in ("test", "val"):
        path = os.path.join(run, f"eval-{split}.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            try:
                report = json.load(f)
            except json.JSONDecodeError as e:
                fail(f"{path}: not JSON ({e.msg})")
        if "confusion_matrix" not in report and "mse" in report:
            break  # a regression or reconstruction report: no classes to draw
        if "confusion_matrix" not in report:
            fail(f"{path}: no confusion_matrix")
        target = os.path.join(where, "confusion.png")
        plot_confusion(report, target)
        print(target)
        roc = os.path.join(run, f"roc-{split}.csv")
        if os.path.isfile(roc):
            auc = report.get("macro", {}).get("auc")
            target = os.path.join(where, "roc.png")
            plot_roc(roc, split, auc, target)
            print(target)
        break  # the test split when there is one: it is the report's number


def plot_lr_find(path, out):
    with open(path) as f:
        result = json.load(f)
    nan = float("nan")  # JSON null: a loss that was not finite
    points = [{k: (nan if v is None else v) for k, v in p.items()} for p in result["points"]]
    if not points:
        fail(f"{path}: no points")
    lrs = [p["lr"] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, [p["loss"] for p in points], alpha=0.35, label="loss")
    ax.plot(lrs, [p["smoothed_loss"] for p in points], label="smoothed loss")
    suggested = result.get("suggested_lr")
    if suggested:
        ax.axvline(suggested, color="r", linestyle="--",
                   label=f"suggested {suggested:.3g} ({result.get('suggested_by', '')})")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    smoothed = [s for s in (p["smoothed_loss"] for p in points) if s == s]
    if smoothed:  # the divergence at the end would flatten everything else
        low, first = min(smoothed), smoothed[0]
        ax.set_ylim(low - 0.1 * abs(first - low) - 1e-3, first + 0.5 * abs(first - low) + 1e-3)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(out)


def main(argv):
    if len(argv) != 4 or argv[1] not in ("run", "lr-find"):
        fail("usage: plot_run.py run RUN OUT.png | plot_run.py lr-find RESULT.json OUT.png")
    if argv[1] == "run":
        plot_run(argv[2], argv[3])
    else:
        plot_lr_find(argv[2], argv[3])


if __name__ == "__main__":
    main(sys.argv)
