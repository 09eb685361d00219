#!/usr/bin/env python3
"""Training throughput (images/s) and peak resident memory: `ruche train` against PyTorch at its
best (OpenBLAS; NCHW and channels_last, the faster counts) on the same model, batch, threads and
synthetic input, fp32, SGD with momentum. Alternating rounds, one process per round, so each
side's peak RSS is that of its own process (os.wait4).

  fashion_cnn  1x28x28, 10 classes, batch 64
  resnet18     3x32x32 (CIFAR stem: conv1 3x3 stride 1, no max pool), 10 classes, batch 32

ruche's figure is the mean img/s of the log intervals after the first (warm-up) from the run's
metrics.jsonl; PyTorch's is images / seconds over the same number of steps after the same
warm-up. Both loops read the loss every step (loss.item()).

usage: throughput.py BUILD_DIR [--rounds 5] [--threads 1 2] [--models fashion_cnn resnet18]
       throughput.py --torch-worker MODEL BATCH THREADS LAYOUT WARMUP STEPS  (one PyTorch round)
"""
import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

import common

# Steps per run: warm-up steps (the first log interval for ruche) then timed steps. Sized so the
# whole benchmark stays within ~6 minutes on a quiet 2-core machine.
MODELS = {
    "fashion_cnn": {"shape": (1, 28, 28), "classes": 10, "batch": 64, "warmup": 4, "steps": 12},
    "resnet18": {"shape": (3, 32, 32), "classes": 10, "batch": 32, "warmup": 1, "steps": 2},
}
# Shared by both sides (ruche's default recipe: SGD, Nesterov momentum 0.9, weight decay 5e-4,
# none on BN and biases).
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


# ---------------------------------------------------------------- PyTorch side (a subprocess)

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
    if name == "resnet18":  # torchvision's ResNet-18 with ruche's CIFAR stem (<= 64 px)
        import torchvision
        m = torchvision.models.resnet18(num_classes=MODELS[name]["classes"])
        m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        m.maxpool = nn.Identity()
        return m
    raise SystemExit(f"unknown model {name}")


def torch_worker(model, batch, threads, layout, warmup, steps):
    import torch
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
    print(json.dumps({"img_per_s": batch * steps / seconds, "seconds": seconds}))


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


# ---------------------------------------------------------------- the driver

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


def base_env(threads):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def ruche_command(build, model, threads, out_dir):
    spec = MODELS[model]
    steps = spec["warmup"] + spec["steps"]
    return [f"{build}/ruche", "train", "--model", model, "--data", "synthetic",
            "--synthetic-shape", ",".join(map(str, spec["shape"])),
            "--synthetic-classes", str(spec["classes"]),
            "--batch-size", str(spec["batch"]), "--max-steps", str(steps),
            "--log-every", str(spec["warmup"]) if spec["warmup"] > 0 else "1",
            "--optimizer", "sgd", "--lr", str(LR), "--momentum", str(MOMENTUM),
            "--weight-decay", str(WEIGHT_DECAY), "--lr-policy", "fixed", "--warmup-epochs", "0",
            "--val-fraction", "0", "--no-augment", "--threads", str(threads), "--out", out_dir]


def torch_command(model, threads, layout):
    spec = MODELS[model]
    return [sys.executable, str(pathlib.Path(__file__).resolve()), "--torch-worker", model,
            str(spec["batch"]), str(threads), layout, str(spec["warmup"]), str(spec["steps"])]


def where_the_time_goes(build, model, threads, layout):
    """Per layer kind, ms per forward+backward of one batch: `ruche time` against the PyTorch
    profiler (same model, batch, threads, layout of the faster PyTorch). None without ruche time."""
    spec = MODELS[model]
    iterations = 10 if model == "fashion_cnn" else 2
    cmd = [f"{build}/ruche", "time", "--model", model, "--batch-size", str(spec["batch"]),
           "--input", ",".join(map(str, spec["shape"])), "--classes", str(spec["classes"]),
           "--iterations", str(iterations), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=base_env(threads))
    if proc.returncode != 0:
        return None  # ruche time is not in this build
    ruche_kinds = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] != "layer":
            try:
                ms = float(parts[2]) + (float(parts[3]) if parts[3] != "-" else 0.0)
            except ValueError:
                continue
            k = kind_of(parts[1], 1)
            ruche_kinds[k] = ruche_kinds.get(k, 0.0) + ms
    out = subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve()),
                          "--torch-profile", model, str(spec["batch"]), str(threads), layout,
                          str(iterations)], capture_output=True, text=True, check=True,
                         env=base_env(threads))
    torch_kinds = json.loads(out.stdout.strip().splitlines()[-1])
    return {"model": model, "threads": threads, "torch_layout": layout,
            "ruche_command": shlex.join(cmd), "ruche_ms": ruche_kinds, "torch_ms": torch_kinds}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-profile":
        m, b, t, layout, it = sys.argv[2:7]
        torch_profile_worker(m, int(b), int(t), layout, int(it))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        m, b, t, layout, w, s = sys.argv[2:8]
        torch_worker(m, int(b), int(t), layout, int(w), int(s))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the result's notes (e.g. the machine was busy)")
    args = parser.parse_args()
    import torch
    blas = common.require_openblas(torch)
    build = str(pathlib.Path(args.build).resolve())
    ruche_version = subprocess.run([f"{build}/ruche", "--version"], capture_output=True,
                                   text=True).stdout.strip() or "?"
    git_rev = subprocess.run(["git", "-C", str(pathlib.Path(__file__).parent), "rev-parse",
                              "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    started = time.time()
    loadavg_before = os.getloadavg()

    sides = ("ruche", "torch_nchw", "torch_channels_last")
    rows = []
    for model in args.models:
        for ti, threads in enumerate(args.threads):
            samples = {s: [] for s in sides}
            rss = {s: [] for s in sides}
            # Round 0, for a model's first thread count, is a warm-up (page cache, CPU frequency)
            # and is not counted.
            for rnd in range(0 if ti == 0 else 1, args.rounds + 1):
                for side in sides:  # A B C A B C: noise hits every side alike
                    if side == "ruche":
                        spec = MODELS[model]
                        with tempfile.TemporaryDirectory(prefix="ruche-throughput-") as out_dir:
                            _, peak = run_measured(ruche_command(build, model, threads, out_dir),
                                                   base_env(threads))
                            rate = steady_rate(f"{out_dir}/metrics.jsonl", spec["batch"])
                    else:
                        layout = side[len("torch_"):]
                        stdout, peak = run_measured(torch_command(model, threads, layout),
                                                    base_env(threads))
                        rate = json.loads(stdout.strip().splitlines()[-1])["img_per_s"]
                    if rnd > 0:
                        samples[side].append(rate)
                        rss[side].append(peak)
                    print(f"  {model} threads {threads} round {rnd}{' (warm-up)' if rnd == 0 else ''}"
                          f" {side}: {rate:.1f} img/s, peak RSS {peak:.0f} MiB "
                          f"[{time.time() - started:.0f} s]", flush=True)
            stats = {s: common.summary(samples[s]) for s in sides}
            rss_stats = {s: common.summary(rss[s]) for s in sides}
            best = max(("torch_nchw", "torch_channels_last"), key=lambda s: stats[s]["median"])
            ratio = stats["ruche"]["median"] / stats[best]["median"]
            rss_ratio = rss_stats["ruche"]["median"] / rss_stats[best]["median"]
            rows.append({"model": model, "threads": threads, "batch": MODELS[model]["batch"],
                         "input": list(MODELS[model]["shape"]), "img_per_s": stats,
                         "peak_rss_mib": rss_stats, "torch_best": best,
                         "ratio_img_per_s": ratio, "ratio_peak_rss": rss_ratio})
            print(f"{model} threads {threads}: ruche {stats['ruche']['median']:.1f} img/s, "
                  f"{best} {stats[best]['median']:.1f} img/s, ratio {ratio:.2f}x; peak RSS ruche "
                  f"{rss_stats['ruche']['median']:.0f} MiB, torch "
                  f"{rss_stats[best]['median']:.0f} MiB ({rss_ratio:.2f}x)", flush=True)

    # Where the time goes, at one thread (per-layer numbers are cleanest there).
    profiles = []
    for r in rows:
        if r["threads"] == min(args.threads):
            print(f"  profiling {r['model']} (ruche time, torch.profiler) ...", flush=True)
            p = where_the_time_goes(build, r["model"], r["threads"], r["torch_best"][6:])
            if p is not None:
                profiles.append(p)
    elapsed = time.time() - started
    notes = list(args.note)
    notes.append(common.load_note(loadavg_before))
    sample_cmds = {}
    for model in args.models:
        t = args.threads[0]
        sample_cmds[model] = {
            "ruche": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=%d " % t
                     + shlex.join(ruche_command(build, model, t, "TMPDIR")),
            "torch": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=%d " % t
                     + shlex.join(torch_command(model, t, "nchw|channels_last")),
        }
    record = {
        "benchmark": "throughput",
        "what": "training images/s and peak RSS, ruche train vs PyTorch, synthetic input, fp32, "
                "SGD Nesterov momentum 0.9, weight decay 5e-4 (none on BN/bias), CPU",
        "machine": common.machine(),
        "versions": {"torch": torch.__version__, "torch_blas": blas, "ruche": ruche_version,
                     "ruche_git": git_rev, "python": sys.version.split()[0]},
        "command": " ".join([sys.executable] + sys.argv),
        "env": "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; OMP_NUM_THREADS = threads",
        "per_round_commands": sample_cmds,
        "models": MODELS,
        "rounds": args.rounds,
        "warmup_rounds": "1 per model, before its first thread count; every run also has "
                         "its own warm-up steps",
        "elapsed_s": round(elapsed, 1),
        "notes": notes,
        "results": rows,
        "where_the_time_goes": profiles,
    }
    lines = ["# Training throughput: ruche vs PyTorch (CPU, fp32)", "",
             f"Machine: {record['machine'].get('cpu', '?')}, {record['machine']['cores']} cores, "
             f"{record['machine']['memory_gib']} GiB; torch {torch.__version__} ({blas}); ruche "
             f"{ruche_version} ({git_rev}). Median (min-max) of {args.rounds} alternating rounds "
             "after a warm-up round, one process per run; synthetic input; SGD Nesterov "
             "momentum. Ratio = ruche / best PyTorch layout (>1: ruche faster, or for RSS: "
             "ruche larger).", "",
             "| model | batch | threads | ruche img/s | PyTorch img/s (layout) | ratio | "
             "ruche peak RSS MiB | PyTorch peak RSS MiB | RSS ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s, m, b = r["img_per_s"], r["peak_rss_mib"], r["torch_best"]
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {s['ruche']['median']:.1f} "
            f"({s['ruche']['min']:.1f}-{s['ruche']['max']:.1f}) | {s[b]['median']:.1f} "
            f"({s[b]['min']:.1f}-{s[b]['max']:.1f}, {b[6:]}) | {r['ratio_img_per_s']:.2f}x | "
            f"{m['ruche']['median']:.0f} | {m[b]['median']:.0f} | {r['ratio_peak_rss']:.2f}x |")
    lines += ["", "The other PyTorch layout, median img/s:", ""]
    for r in rows:
        other = "torch_channels_last" if r["torch_best"] == "torch_nchw" else "torch_nchw"
        lines.append(f"- {r['model']} threads {r['threads']}: {other[6:]} "
                     f"{r['img_per_s'][other]['median']:.1f}")
    if profiles:
        lines += ["", "## Where the time goes", "",
                  "ms per forward+backward of one batch by layer kind (no optimizer step): "
                  "`ruche time` per-layer sums against the PyTorch profiler's self CPU time of "
                  "the aten ops of that kind (faster PyTorch layout), measured after the rounds.",
                  ""]
        for p in profiles:
            kinds = [k for k, _, _ in KINDS] + ["other"]
            kinds = [k for k in kinds if p["ruche_ms"].get(k, 0) + p["torch_ms"].get(k, 0) > 0]
            lines += [f"{p['model']}, threads {p['threads']}, PyTorch {p['torch_layout']} "
                      f"(`{p['ruche_command']}`):", "",
                      "| kind | ruche ms | PyTorch ms | ruche - PyTorch |", "|---|---|---|---|"]
            for k in kinds:
                a, b = p["ruche_ms"].get(k, 0.0), p["torch_ms"].get(k, 0.0)
                lines.append(f"| {k} | {a:.1f} | {b:.1f} | {a - b:+.1f} |")
            ta, tb = sum(p["ruche_ms"].values()), sum(p["torch_ms"].values())
            lines += [f"| total | {ta:.1f} | {tb:.1f} | {ta - tb:+.1f} |", ""]
    lines += common.footer_lines(notes, record["command"], record["env"], elapsed)
    path = common.write_results("throughput", record, "\n".join(lines))
    print(f"wrote {path}.json and .md")


def steady_rate(metrics_path, batch):
    """Steady-state img/s from a run's metrics.jsonl: the log intervals after the first."""
    train = []
    for line in open(metrics_path):
        r = json.loads(line)
        if "img_per_s" in r:
            train.append(r)
    intervals, prev_step = [], None
    for r in train:
        if prev_step is not None:
            intervals.append((r["step"] - prev_step, r["img_per_s"]))
        prev_step = r["step"]
    if not intervals:
        raise SystemExit(f"benchmark: {metrics_path} has no steady-state interval: {train}")
    images = sum(n * batch for n, _ in intervals)
    seconds = sum(n * batch / rate for n, rate in intervals)
    return images / seconds


if __name__ == "__main__":
    main()
