#!/usr/bin/env python3
"""Training throughput (images/s), peak resident memory and the fraction of the machine's GEMM
rate: `ruche train` against PyTorch at its best on the same model, batch, threads and synthetic
input, fp32, SGD with Nesterov momentum. Alternating rounds, one process per run, so each side's
peak RSS is that of its own process (os.wait4).

Sides of every round, in this order:
  ruche                 BUILD_DIR/ruche
  ruche_baseline        --baseline-build DIR/ruche (an older build: the improvement as a ratio)
  torch_nchw, torch_channels_last          Debian's PyTorch (must run on OpenBLAS)
  torch_new_nchw, torch_new_channels_last  the PyTorch of the virtualenv RUCHE_TORCH_VENV names
                        (with torchvision; "not measured" when unset)
  gemm_onednn           BUILD_DIR/gemm_bench: oneDNN sgemm on 2048^2 (skipped when absent)
  gemm_openblas         numpy's sgemm on 2048^2 through OpenBLAS
The GEMM limit of a row is the faster library's median; a model's fraction of it is ruche's FLOP
count per image (`ruche train` prints the forward MFLOPs per batch) x 3 for forward and backward,
times images/s, over that limit.

  fashion_cnn  1x28x28, 10 classes, batch 64 and 128
  resnet18     3x32x32 (CIFAR stem: conv1 3x3 stride 1, no max pool), 10 classes, batch 32 and 64
  resnet50     3x224x224, 1000 classes, batch 8, a few steps

ruche's figure is the img/s of the log intervals after the first (warm-up) from the run's
metrics.jsonl; PyTorch's is images / seconds over the same number of steps after the same
warm-up. Both loops read the loss every step (loss.item()).

usage: throughput.py BUILD_DIR [--baseline-build DIR] [--rounds 5] [--threads 1 2]
                     [--models fashion_cnn resnet18 resnet50] [--batches 64 resnet18:32]
                     [--suffix b]
"""
import argparse
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile
import time

import common

# Steps per run: warm-up steps (the first log interval for ruche) then timed steps, per batch.
# Sized so 5 rounds of every row, with a baseline build, stay within ~25 minutes on a quiet
# 2-core machine; resnet18 at batch 64 and resnet50 time one or two steps.
MODELS = {
    "fashion_cnn": {"shape": (1, 28, 28), "classes": 10,
                    "batches": {64: (3, 9), 128: (2, 5)}},
    "resnet18": {"shape": (3, 32, 32), "classes": 10, "batches": {32: (1, 2), 64: (1, 1)}},
    "resnet50": {"shape": (3, 224, 224), "classes": 1000, "batches": {8: (1, 2)}},
}
# The goals of issue 24: small nets >= 1.5x the best PyTorch, convolution-heavy nets >= 80% of
# the GEMM limit, peak RSS <= PyTorch's everywhere.
SMALL_NETS, SMALL_NET_SPEEDUP, CONV_NET_GEMM_FRACTION = ("fashion_cnn",), 1.5, 0.80
# Shared by both sides (ruche's default recipe: SGD, Nesterov momentum 0.9, weight decay 5e-4,
# none on BN and biases).
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4
GEMM_N = 2048
TORCH_SIDES = ("torch_nchw", "torch_channels_last", "torch_new_nchw", "torch_new_channels_last")


def torch_model(name, torch):
    nn = torch.nn
    if name == "fashion_cnn":  # engine/models/models.h: fashion_cnn
        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]
        return nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2), nn.Dropout(0.25),
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(256, MODELS[name]["classes"]))
    import torchvision
    if name == "resnet18":  # torchvision's ResNet-18 with ruche's CIFAR stem (<= 64 px)
        m = torchvision.models.resnet18(num_classes=MODELS[name]["classes"])
        m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        m.maxpool = nn.Identity()
        return m
    if name == "resnet50":  # torchvision's ResNet-50, as ruche's resnet50 at 224 px
        return torchvision.models.resnet50(num_classes=MODELS[name]["classes"])
    raise SystemExit(f"unknown model {name}")


def torch_worker(model, batch, threads, layout, warmup, steps, blas):
    import torch
    if blas == "openblas":
        common.require_openblas(torch)
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    spec = MODELS[model]
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    net = torch_model(model, torch).to(memory_format=fmt).train()
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": WEIGHT_DECAY},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=LR, momentum=MOMENTUM, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, *spec["shape"]).contiguous(memory_format=fmt)
    y = torch.randint(0, spec["classes"], (batch,))
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        loss.item()
    seconds = time.perf_counter() - t0
    print(json.dumps({"img_per_s": batch * steps / seconds, "seconds": seconds,
                      "torch": torch.__version__}))


def openblas_gemm_worker(threads):
    """numpy's sgemm (OpenBLAS) on GEMM_N^2: median GFLOP/s of 3 products after a warm-up."""
    import numpy as np
    a = np.random.default_rng(1).random((GEMM_N, GEMM_N), dtype=np.float32)
    b = a.T.copy()
    a @ b
    with open("/proc/self/maps") as f:
        if "openblas" not in f.read():
            raise SystemExit("benchmark: numpy is not using OpenBLAS (make deps)")
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        rates.append(2.0 * GEMM_N**3 / (time.perf_counter() - t0) / 1e9)
    print(json.dumps({"gflops": sorted(rates)[1], "threads": threads}))


# Layer kinds for "where the time goes": ruche's layer types and the aten ops PyTorch runs for them.
KINDS = [("conv", ("Convolution",), ("convolution",)),
         ("batch norm", ("BatchNorm",), ("batch_norm",)),
         ("relu", ("ReLU",), ("relu", "clamp_min", "threshold_backward")),
         ("pooling", ("Pooling",), ("max_pool", "avg_pool", "adaptive_avg")),
         ("dropout", ("Dropout",), ("bernoulli", "aten::mul", "aten::div")),
         ("linear", ("InnerProduct",), ("addmm", "aten::mm")),
         ("eltwise add", ("Eltwise",), ("aten::add",)),
         ("loss", ("SoftmaxWithLoss", "Softmax"), ("softmax", "nll_loss"))]


def kind_of(name, column):
    for kind, ruche_types, torch_ops in KINDS:
        keys = ruche_types if column == 1 else torch_ops
        if (column == 1 and name in keys) or (column == 2 and any(k in name for k in keys)):
            return kind
    return "other"


def torch_profile_worker(model, batch, threads, layout, iterations):
    """ms per forward+backward by layer kind (self CPU time of the aten ops), no optimizer."""
    import torch
    torch.set_num_threads(threads)
    spec = MODELS[model]
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    net = torch_model(model, torch).to(memory_format=fmt).train()
    x = torch.randn(batch, *spec["shape"]).contiguous(memory_format=fmt)
    y = torch.randint(0, spec["classes"], (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        net.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
    step()
    with torch.profiler.profile() as prof:
        for _ in range(iterations):
            step()
    kinds = {}
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        k = kind_of(e.key, 2)
        kinds[k] = kinds.get(k, 0.0) + e.self_cpu_time_total / 1e3 / iterations
    print(json.dumps(kinds))


def run_measured(args, env, cwd=None):
    """Runs args to completion; returns (stdout, peak RSS MiB of that process alone)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: {shlex.join(args)} failed ({proc.returncode}):\n"
                         f"{stdout[-2000:]}\n{stderr[-2000:]}")
    return stdout, usage.ru_maxrss / 1024  # Linux: KiB


def ruche_command(ruche, model, batch, threads, out_dir):
    spec = MODELS[model]
    warmup, steps = spec["batches"][batch]
    return [ruche, "train", "--model", model, "--data", "synthetic",
            "--synthetic-shape", ",".join(map(str, spec["shape"])),
            "--synthetic-classes", str(spec["classes"]),
            "--batch-size", str(batch), "--max-steps", str(warmup + steps),
            "--log-every", str(warmup),
            "--optimizer", "sgd", "--lr", str(LR), "--momentum", str(MOMENTUM),
            "--weight-decay", str(WEIGHT_DECAY), "--lr-policy", "fixed", "--warmup-epochs", "0",
            "--val-fraction", "0", "--no-augment", "--threads", str(threads), "--out", out_dir]


def torch_python(side):
    """The interpreter of a PyTorch side: this one (Debian's torch) or RUCHE_TORCH_VENV's."""
    if side.startswith("torch_new_"):
        return str(pathlib.Path(os.environ["RUCHE_TORCH_VENV"]) / "bin" / "python")
    return sys.executable


def torch_command(side, model, batch, threads):
    warmup, steps = MODELS[model]["batches"][batch]
    layout = "nchw" if side.endswith("nchw") else "channels_last"
    blas = "any" if side.startswith("torch_new_") else "openblas"
    return [torch_python(side), str(pathlib.Path(__file__).resolve()), "--torch-worker", model,
            str(batch), str(threads), layout, str(warmup), str(steps), blas]


def gemm_command(side, build, threads):
    if side == "gemm_onednn":
        return [f"{build}/gemm_bench", "--n", str(GEMM_N), "--reps", "3", "--threads",
                str(threads)]
    return [sys.executable, str(pathlib.Path(__file__).resolve()), "--gemm-worker", str(threads)]


def gemm_env(threads):
    env = common.ruche_env(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


FLOPS_LINE = re.compile(r"([0-9.]+) MFLOPs forward per batch of ([0-9]+)")


def run_side(side, args, model, batch, threads):
    """One run of one side: (rate, peak RSS MiB, forward FLOPs per image or None). The rate is
    img/s for ruche and PyTorch sides and GFLOP/s for GEMM sides."""
    if side.startswith("ruche"):
        build = args.build if side == "ruche" else args.baseline_build
        with tempfile.TemporaryDirectory(prefix="ruche-throughput-") as out_dir:
            stdout, peak = run_measured(
                ruche_command(f"{build}/ruche", model, batch, threads, out_dir),
                common.ruche_env(threads))
            rate = common.steady_img_per_s(f"{out_dir}/metrics.jsonl", batch)
        m = FLOPS_LINE.search(stdout)
        flops = float(m.group(1)) * 1e6 / int(m.group(2)) if m else None
        return rate, peak, flops
    if side.startswith("gemm"):
        stdout, peak = run_measured(gemm_command(side, args.build, threads), gemm_env(threads))
        r = json.loads(stdout.strip().splitlines()[-1])
        return r.get("gflops_median", r.get("gflops")), peak, None
    stdout, peak = run_measured(torch_command(side, model, batch, threads),
                                common.ruche_env(threads))
    return json.loads(stdout.strip().splitlines()[-1])["img_per_s"], peak, None


def where_the_time_goes(builds, model, batch, threads, layout):
    """Per layer kind, ms per forward+backward of one batch: `ruche time` of each build (name ->
    directory) against the PyTorch profiler (same model, batch, threads, layout of the faster
    Debian PyTorch). A build without `ruche time` is left out."""
    spec = MODELS[model]
    iterations = {"fashion_cnn": 10, "resnet18": 2}.get(model, 1)
    record = {"model": model, "batch": batch, "threads": threads, "torch_layout": layout,
              "ruche_commands": {}, "ms": {}}
    for name, build in builds.items():
        cmd = [f"{build}/ruche", "time", "--model", model, "--batch-size", str(batch),
               "--input", ",".join(map(str, spec["shape"])), "--classes", str(spec["classes"]),
               "--iterations", str(iterations), "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=common.ruche_env(threads))
        if proc.returncode != 0:
            continue
        kinds = {}
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] != "layer":
                try:
                    ms = float(parts[2]) + (float(parts[3]) if parts[3] != "-" else 0.0)
                except ValueError:
                    continue
                k = kind_of(parts[1], 1)
                kinds[k] = kinds.get(k, 0.0) + ms
        record["ruche_commands"][name] = shlex.join(cmd)
        record["ms"][name] = kinds
    out = subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve()),
                          "--torch-profile", model, str(batch), str(threads), layout,
                          str(iterations)], capture_output=True, text=True, check=True,
                         env=common.ruche_env(threads))
    record["ms"]["torch"] = json.loads(out.stdout.strip().splitlines()[-1])
    return record


def measure_row(args, sides, model, batch, threads, first_of_model, started):
    """The alternating rounds of one (model, batch, threads) row; returns its result record."""
    samples = {s: [] for s in sides}
    rss = {s: [] for s in sides}
    flops = {}
    # Round 0 of a model's first row is a warm-up (page cache, CPU frequency) and not counted.
    for rnd in range(0 if first_of_model else 1, args.rounds + 1):
        for side in sides:  # A B C A B C: noise hits every side alike
            rate, peak, f = run_side(side, args, model, batch, threads)
            if f is not None:
                flops[side] = f
            if rnd > 0:
                samples[side].append(rate)
                rss[side].append(peak)
            unit = "GFLOP/s" if side.startswith("gemm") else "img/s"
            print(f"  {model} batch {batch} threads {threads} round {rnd}"
                  f"{' (warm-up)' if rnd == 0 else ''} {side}: {rate:.1f} {unit}, peak RSS "
                  f"{peak:.0f} MiB [{time.time() - started:.0f} s]", flush=True)
    stats = {s: common.summary(samples[s]) for s in sides}
    rss_stats = {s: common.summary(rss[s]) for s in sides if not s.startswith("gemm")}
    torch_sides = [s for s in sides if s in TORCH_SIDES]
    best = max(torch_sides, key=lambda s: stats[s]["median"])
    gemm = {s: stats[s]["median"] for s in sides if s.startswith("gemm")}
    limit_side = max(gemm, key=gemm.get)
    row = {"model": model, "batch": batch, "threads": threads,
           "input": list(MODELS[model]["shape"]), "img_per_s": {}, "peak_rss_mib": rss_stats,
           "gemm_gflops": {s: stats[s] for s in gemm}, "gemm_limit_gflops": gemm[limit_side],
           "gemm_limit_side": limit_side, "gemm_fraction": {},
           "torch_best": best,
           "ratio_img_per_s": stats["ruche"]["median"] / stats[best]["median"],
           "ratio_peak_rss": rss_stats["ruche"]["median"] / rss_stats[best]["median"]}
    for s in sides:
        if s.startswith("gemm"):
            continue
        row["img_per_s"][s] = stats[s]
    # Every side runs the same network, so ruche's count is every side's.
    train_flops = 3.0 * flops["ruche"] if "ruche" in flops else None
    row["train_flops_per_image"] = train_flops
    for s in row["img_per_s"]:
        if train_flops:
            rate = train_flops * row["img_per_s"][s]["median"] / 1e9
            row["gemm_fraction"][s] = rate / gemm[limit_side]
    if "ruche_baseline" in sides:
        row["ratio_vs_baseline"] = (stats["ruche"]["median"] /
                                    stats["ruche_baseline"]["median"])
    print(f"{model} batch {batch} threads {threads}: ruche {stats['ruche']['median']:.1f} img/s, "
          f"{best} {stats[best]['median']:.1f} img/s, ratio {row['ratio_img_per_s']:.2f}x; "
          f"GEMM fraction {row['gemm_fraction'].get('ruche', float('nan')):.2f}; peak RSS "
          f"ruche {rss_stats['ruche']['median']:.0f} MiB ({row['ratio_peak_rss']:.2f}x)",
          flush=True)
    return row


def goals(rows):
    """Issue 24's goals per row: (row, goal text, met, how far)."""
    out = []
    for r in rows:
        name = f"{r['model']} b{r['batch']} t{r['threads']}"
        if r["model"] in SMALL_NETS:
            ratio = r["ratio_img_per_s"]
            out.append((name, f">= {SMALL_NET_SPEEDUP}x best PyTorch img/s",
                        ratio >= SMALL_NET_SPEEDUP,
                        f"{ratio:.2f}x ({ratio / SMALL_NET_SPEEDUP - 1:+.0%} of the goal)"))
        else:
            frac = r["gemm_fraction"].get("ruche")
            if frac is not None:
                out.append((name, f">= {CONV_NET_GEMM_FRACTION:.0%} of the GEMM limit",
                            frac >= CONV_NET_GEMM_FRACTION,
                            f"{frac:.0%} ({(frac - CONV_NET_GEMM_FRACTION) * 100:+.0f} points)"))
        rss = r["ratio_peak_rss"]
        out.append((name, "peak RSS <= best PyTorch's", rss <= 1.0,
                    f"{rss:.2f}x ({rss - 1:+.0%})"))
    return out


def markdown(record, rows, profiles, sides):
    v = record["versions"]
    lines = ["# Training throughput: ruche vs PyTorch and the GEMM limit (CPU, fp32)", "",
             f"Machine: {record['machine'].get('cpu', '?')}, {record['machine']['cores']} cores, "
             f"{record['machine']['memory_gib']} GiB; torch {v['torch']} ({v['torch_blas']}); "
             f"newer PyTorch: {v['torch_new']}; ruche {v['ruche']} ({v['ruche_git']})"
             + (f"; baseline build {v['ruche_baseline']}" if "ruche_baseline" in sides else "")
             + f". Median (min-max) of {record['rounds']} alternating rounds after a warm-up "
             "round, one process per run; synthetic input; SGD Nesterov momentum. Ratio = ruche "
             "/ best PyTorch side (>1: ruche faster, or for RSS: ruche larger). GEMM limit: the "
             f"faster median of oneDNN and OpenBLAS sgemm on {GEMM_N}^2 in the same rounds; "
             "fraction = ruche's FLOPs per image x 3 x img/s / limit.", ""]
    head = "| model | batch | threads | ruche img/s |"
    rule = "|---|---|---|---|"
    if "ruche_baseline" in sides:
        head += " baseline img/s | vs baseline |"
        rule += "---|---|"
    head += (" best PyTorch img/s (side) | ratio | GEMM limit GFLOP/s | ruche GEMM fraction | "
             "ruche RSS MiB | PyTorch RSS MiB | RSS ratio |")
    rule += "---|---|---|---|---|---|---|"
    lines += [head, rule]
    for r in rows:
        s, m, b = r["img_per_s"], r["peak_rss_mib"], r["torch_best"]
        line = (f"| {r['model']} | {r['batch']} | {r['threads']} | "
                f"{common.median_range(s['ruche'])} |")
        if "ruche_baseline" in sides:
            line += (f" {common.median_range(s['ruche_baseline'])} | "
                     f"{r['ratio_vs_baseline']:.2f}x |")
        frac = r["gemm_fraction"].get("ruche")
        line += (f" {common.median_range(s[b])}, {b} | {r['ratio_img_per_s']:.2f}x | "
                 f"{r['gemm_limit_gflops']:.1f} ({r['gemm_limit_side'][5:]}) | "
                 f"{'n/a' if frac is None else f'{frac:.0%}'} | {m['ruche']['median']:.0f} | "
                 f"{m[b]['median']:.0f} | {r['ratio_peak_rss']:.2f}x |")
        lines.append(line)
    lines += ["", "Every side, median img/s and fraction of the GEMM limit; GEMM medians:", ""]
    for r in rows:
        parts = [f"{s} {r['img_per_s'][s]['median']:.1f}"
                 + (f" ({r['gemm_fraction'][s]:.0%})" if s in r["gemm_fraction"] else "")
                 for s in r["img_per_s"]]
        parts += [f"{s} {g['median']:.1f} GFLOP/s" for s, g in r["gemm_gflops"].items()]
        lines.append(f"- {r['model']} b{r['batch']} t{r['threads']}: " + ", ".join(parts))
    if v["torch_new"] == "not measured":
        lines += ["", "The newer PyTorch was not measured: RUCHE_TORCH_VENV names no virtualenv "
                      "holding it (its wheel brings gigabytes of CUDA libraries)."]
    lines += ["", "## Goals (issue 24)", "", "| row | goal | met | where it stands |",
              "|---|---|---|---|"]
    for name, goal, met, how in goals(rows):
        lines.append(f"| {name} | {goal} | {'met' if met else 'missed'} | {how} |")
    if profiles:
        lines += ["", "## Where the time goes", "",
                  "ms per forward+backward of one batch by layer kind (no optimizer step): "
                  "`ruche time` per-layer sums against the PyTorch profiler's self CPU time of "
                  "the aten ops of that kind (faster Debian PyTorch layout), measured after the "
                  "rounds.", ""]
        for p in profiles:
            names = list(p["ms"])
            kinds = [k for k, _, _ in KINDS] + ["other"]
            kinds = [k for k in kinds if any(p["ms"][n].get(k, 0) > 0 for n in names)]
            lines += [f"{p['model']}, batch {p['batch']}, threads {p['threads']}, PyTorch "
                      f"{p['torch_layout']} (`{p['ruche_commands'].get('ruche', '')}`):", "",
                      "| kind | " + " | ".join(f"{n} ms" for n in names) +
                      " | ruche - torch |",
                      "|---|" + "---|" * (len(names) + 1)]
            for k in kinds + ["total"]:
                vals = [sum(p["ms"][n].values()) if k == "total" else p["ms"][n].get(k, 0.0)
                        for n in names]
                diff = vals[names.index("ruche")] - vals[-1] if "ruche" in names else 0.0
                lines.append(f"| {k} | " + " | ".join(f"{x:.1f}" for x in vals) +
                             f" | {diff:+.1f} |")
            lines.append("")
    lines += common.footer_lines(record["notes"], record["command"], record["env"],
                                 record["elapsed_s"])
    return "\n".join(lines)


def torch_new_version():
    venv = os.environ.get("RUCHE_TORCH_VENV")
    if not venv:
        return None
    proc = subprocess.run([str(pathlib.Path(venv) / "bin" / "python"), "-c",
                           "import torch, torchvision; print(torch.__version__)"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: RUCHE_TORCH_VENV={venv} has no torch and torchvision: "
                         f"{proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout.strip()


def write_record(args, sides, versions, notes, rows, profiles, started, loadavg_before,
                 partial=False):
    """Writes the result of the rows so far; a partial one after each row, so a run stopped
    early (a deadline, a busy machine) still leaves what it measured."""
    elapsed = time.time() - started
    notes = notes + [common.load_note(loadavg_before)]
    if partial:
        notes.append(f"partial: the {len(rows)} rows measured before the run stopped")
    sample_cmds = {}
    for model in args.models:
        t, b = args.threads[0], next(iter(MODELS[model]["batches"]))
        prefix = f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS={t} "
        sample_cmds[model] = {
            "ruche": prefix + shlex.join(ruche_command(f"{args.build}/ruche", model, b, t,
                                                       "TMPDIR")),
            "torch": prefix + shlex.join(torch_command("torch_nchw", model, b, t)),
        }
    record = {
        "benchmark": "throughput",
        "what": "training images/s, peak RSS and fraction of the sgemm rate, ruche train vs "
                "PyTorch, synthetic input, fp32, SGD Nesterov momentum 0.9, weight decay 5e-4 "
                "(none on BN/bias), CPU",
        "machine": common.machine(),
        "versions": versions,
        "command": " ".join([sys.executable] + sys.argv),
        "env": "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; OMP_NUM_THREADS = threads",
        "sides": sides,
        "per_round_commands": sample_cmds,
        "models": {m: {**MODELS[m], "batches": {str(b): {"warmup_steps": w, "timed_steps": s}
                                                for b, (w, s) in MODELS[m]["batches"].items()}}
                   for m in args.models},
        "gemm": {"n": GEMM_N, "onednn": "gemm_bench (dnnl_sgemm), median of 3",
                 "openblas": "numpy matmul, median of 3"},
        "rounds": args.rounds,
        "warmup_rounds": "1 per model, before its first row; every run also has its own "
                         "warm-up steps",
        "elapsed_s": round(elapsed, 1),
        "notes": notes,
        "results": rows,
        "goals": [{"row": n, "goal": g, "met": m, "where": h} for n, g, m, h in goals(rows)],
        "where_the_time_goes": profiles,
    }
    path = common.write_results("throughput", record, markdown(record, rows, profiles, sides),
                                suffix=args.suffix)
    print(f"wrote {path}.json and .md", flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-profile":
        m, b, t, layout, it = sys.argv[2:7]
        torch_profile_worker(m, int(b), int(t), layout, int(it))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        m, b, t, layout, w, s, blas = sys.argv[2:9]
        torch_worker(m, int(b), int(t), layout, int(w), int(s), blas)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--gemm-worker":
        openblas_gemm_worker(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("build", help="a directory holding ruche (and gemm_bench)")
    parser.add_argument("--baseline-build",
                        help="a directory holding an older ruche, run as one more side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", default=[],
                        help="only these batch sizes: B (every model that has it) or MODEL:B")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip 'where the time goes' after the rounds")
    parser.add_argument("--suffix", default="",
                        help="appended to the result's date (a second result of the day)")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the result's notes (e.g. the machine was busy)")
    args = parser.parse_args()
    common.results_base("throughput", suffix=args.suffix)  # a taken name stops here, not at the end
    import torch
    blas = common.require_openblas(torch)
    torch_new = torch_new_version()
    args.build = str(pathlib.Path(args.build).resolve())
    builds = {"ruche": args.build}
    sides = ["ruche"]
    if args.baseline_build:
        args.baseline_build = str(pathlib.Path(args.baseline_build).resolve())
        builds["ruche_baseline"] = args.baseline_build
        sides.append("ruche_baseline")
    sides += ["torch_nchw", "torch_channels_last"]
    if torch_new:
        sides += ["torch_new_nchw", "torch_new_channels_last"]
    notes = list(args.note)
    if os.path.exists(f"{args.build}/gemm_bench"):
        sides.append("gemm_onednn")
    else:
        notes.append(f"no {args.build}/gemm_bench: the GEMM limit is OpenBLAS's alone")
    sides.append("gemm_openblas")
    versions = common.ruche_versions(args.build)
    versions.update({"torch": torch.__version__, "torch_blas": blas,
                     "torch_new": torch_new or "not measured"})
    if args.baseline_build:
        versions["ruche_baseline"] = subprocess.run(
            [f"{args.baseline_build}/ruche", "--version"], capture_output=True,
            text=True).stdout.strip() or "?"
    started = time.time()
    loadavg_before = os.getloadavg()

    rows = []
    for model in args.models:
        batches = [b for b in MODELS[model]["batches"]
                   if not args.batches or str(b) in args.batches
                   or f"{model}:{b}" in args.batches]
        first = True
        for batch in batches:
            for threads in args.threads:
                rows.append(measure_row(args, sides, model, batch, threads, first, started))
                first = False
                write_record(args, sides, versions, notes, rows, [], started, loadavg_before,
                             partial=True)

    # Where the time goes, at one thread (per-layer numbers are cleanest there), each model's
    # first batch.
    profiles = []
    if not args.no_profile:
        seen = set()
        for r in rows:
            if r["threads"] == min(args.threads) and r["model"] not in seen:
                seen.add(r["model"])
                print(f"  profiling {r['model']} (ruche time, torch.profiler) ...", flush=True)
                layout = ("channels_last" if r["img_per_s"]["torch_channels_last"]["median"] >
                          r["img_per_s"]["torch_nchw"]["median"] else "nchw")
                profiles.append(where_the_time_goes(builds, r["model"], r["batch"],
                                                    r["threads"], layout))
    write_record(args, sides, versions, notes, rows, profiles, started, loadavg_before)


if __name__ == "__main__":
    main()
