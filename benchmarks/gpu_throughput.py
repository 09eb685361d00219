#!/usr/bin/env python3
"""GPU training throughput (images/s) and peak device memory: `ruche train --device cuda`
against PyTorch on the same card, in the same run, on the same model, batch, precision and
synthetic input, SGD with Nesterov momentum (docs/ARCHITECTURE.md, Benchmarks).

  resnet50     3x224x224, 1000 classes, batch 128 and 256
  resnet18     3x224x224, 1000 classes, batch 256
  fashion_cnn  1x28x28,   10 classes,   batch 256

Each configuration runs in fp32 and bf16 (and tf32 when --precisions names it):
  ruche          --precision fp32|tf32|bf16 --cudnn-benchmark (fp32 is strict: no TF32)
  torch          eager, channels_last, cudnn.benchmark on; fp32 with TF32 off in cuBLAS and
                 cuDNN, tf32 with it on, bf16 as torch.autocast(bfloat16) with TF32 on for what
                 stays fp32 (what ruche's bf16 does, ops/ops.h)
  torch_compile  the same through torch.compile, each run capped (--compile-cap-s); run after
                 every eager measurement, as far as the time budget goes
  ruche_previous with --previous RUCHE: an older ruche, run as ruche is, so an improvement (or a
                 regression) is a ratio from one command on one card ("vs previous" = new /
                 previous); ruche, ruche_previous and torch take turns first in successive
                 rounds, and a round starts only when the last one's time still fits the budget
Both sides copy the batch from host memory every step (ruche's loader does; PyTorch from
pinned memory, non_blocking), so neither keeps its input resident on the card.

One process per side and configuration: a warm-up window (cuDNN's algorithm search,
torch.compile's compilation) then --windows timed windows of the model's steps. ruche's figure
per window is the img/s of a metrics.jsonl log interval (the first interval is the warm-up);
PyTorch's is images over the CUDA-event time of the window. Peak memory: ruche's gpu_peak_mib
(tensors held, from its metrics) against torch.cuda.max_memory_allocated (reset before the
warm-up). Ratios are ruche / PyTorch (>1: ruche faster, or for memory: ruche larger).

When ruche fails on a configuration, its error line is recorded and the others still run.
Without a CUDA device: prints "no CUDA device", writes nothing and exits 0.

usage: gpu_throughput.py RUCHE [--models ...] [--batches 128 256] [--precisions fp32 bf16]
                         [--sides ruche torch torch_compile] [--budget-s 510] [--rounds 1]
                         [--previous RUCHE] [--results-dir DIR] [--note TEXT]
  RUCHE: a build directory holding ruche, or the ruche executable (or a wrapper script that
  sets its library path, as benchmarks/gpu_check.py makes for the GPU bundle, whose
  bin/ruche-previous `make gpu-bundle PREVIOUS=OLD_BUNDLE` packs).
       gpu_throughput.py --torch-worker JSON   (one PyTorch run; prints one JSON line)
Writes benchmarks/results/gpu_throughput-<card>-<date>.{json,md}.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import common

MODELS = {
    # window: steps per timed window (and in the warm-up window), sized so that a window of
    # PyTorch on an H100/H200 lasts ~0.3-1 s and a run stays within one synthetic epoch
    # (50,000 samples: ruche's epoch end would land in a window otherwise).
    "resnet50": {"shape": (3, 224, 224), "classes": 1000, "batches": [128, 256], "window": 10},
    "resnet18": {"shape": (3, 224, 224), "classes": 1000, "batches": [256], "window": 20},
    "fashion_cnn": {"shape": (1, 28, 28), "classes": 10, "batches": [256], "window": 30},
}
PRECISIONS = ("fp32", "tf32", "bf16")
SIDES = ("ruche", "torch", "torch_compile")
EAGER = ("ruche", "ruche_previous", "torch")  # the sides of a round; torch_compile runs after
# Shared by both sides: SGD, Nesterov momentum 0.9, weight decay 5e-4 (none on BN and biases).
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4
RUN_CAP_S = 150  # one ruche or eager PyTorch run at most (a slow side cannot eat the budget)


# ---------------------------------------------------------------- PyTorch side (a subprocess)

def resnet(depth, classes, torch):
    """torchvision's ResNet-18/50 layout (7x7 stem, max pool, 4 stages, stride on the 3x3 of a
    bottleneck), written here so the GPU machine needs no torchvision. ruche's resnet at 224 px
    is this network (engine/models/models.h)."""
    nn = torch.nn

    def conv_bn(cin, cout, k, stride):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin, width, stride, bottleneck):
            super().__init__()
            cout = width * 4 if bottleneck else width
            if bottleneck:
                layers = (conv_bn(cin, width, 1, 1) + [nn.ReLU(inplace=True)] +
                          conv_bn(width, width, 3, stride) + [nn.ReLU(inplace=True)] +
                          conv_bn(width, cout, 1, 1))
            else:
                layers = (conv_bn(cin, width, 3, stride) + [nn.ReLU(inplace=True)] +
                          conv_bn(width, width, 3, 1))
            self.body = nn.Sequential(*layers)
            self.shortcut = (nn.Sequential(*conv_bn(cin, cout, 1, stride))
                             if stride != 1 or cin != cout else nn.Identity())
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.body(x) + self.shortcut(x))

    blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    bottleneck = depth >= 50
    layers = conv_bn(3, 64, 7, 2) + [nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, count in enumerate(blocks):
        width = 64 << stage
        for i in range(count):
            layers.append(Block(cin, width, 2 if stage > 0 and i == 0 else 1, bottleneck))
            cin = width * 4 if bottleneck else width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def torch_model(name, torch):
    if name == "resnet50":
        return resnet(50, MODELS[name]["classes"], torch)
    if name == "resnet18":
        return resnet(18, MODELS[name]["classes"], torch)
    if name == "fashion_cnn":
        import throughput  # the CPU benchmark's fashion_cnn (engine/models/models.h)
        return throughput.torch_model(name, torch)
    raise SystemExit(f"unknown model {name}")


def torch_worker(cfg):
    """One PyTorch run of cfg (model, batch, precision, compile, window, windows); prints
    {"img_per_s": [per window], "peak_mib", "warmup_s"}."""
    import torch
    spec = MODELS[cfg["model"]]
    bf16 = cfg["precision"] == "bf16"
    tf32 = cfg["precision"] != "fp32"  # bf16's fp32 remainder uses TF32, as ruche's does
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    dev = torch.device("cuda")
    cl = torch.channels_last
    net = torch_model(cfg["model"], torch).to(dev, memory_format=cl).train()
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": WEIGHT_DECAY},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=LR, momentum=MOMENTUM, nesterov=True)
    model = torch.compile(net) if cfg["compile"] else net
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = cfg["batch"]
    x_host = torch.randn(batch, *spec["shape"]).contiguous(memory_format=cl).pin_memory()
    y_host = torch.randint(0, spec["classes"], (batch,)).pin_memory()

    def step():
        x = x_host.to(dev, non_blocking=True).contiguous(memory_format=cl)
        y = y_host.to(dev, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(cfg["window"]):
        loss = step()
    loss.item()  # the warm-up, with cuDNN's search and any compilation, ends here
    warmup_s = time.perf_counter() - start
    events = [torch.cuda.Event(enable_timing=True) for _ in range(cfg["windows"] + 1)]
    events[0].record()
    for w in range(cfg["windows"]):
        for _ in range(cfg["window"]):
            loss = step()
        events[w + 1].record()
    final_loss = loss.item()
    torch.cuda.synchronize()
    rates = [batch * cfg["window"] / (events[w].elapsed_time(events[w + 1]) / 1e3)
             for w in range(cfg["windows"])]
    print(json.dumps({"img_per_s": rates, "peak_mib": torch.cuda.max_memory_allocated() / 2**20,
                      "warmup_s": round(warmup_s, 2), "final_loss": final_loss}))


# ---------------------------------------------------------------- the driver

def card_slug(name):
    """'NVIDIA H200' -> 'h200': the card's name as it goes into the result's file name."""
    name = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.I).lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "gpu"


def error_line(stdout, stderr):
    """The line that says why a run failed: the last one naming an error, else the last one."""
    lines = [l.strip() for l in (stderr + "\n" + stdout).splitlines()
             if l.strip() and not l.startswith("Run with --help")]
    for line in reversed(lines):
        if re.search(r"error|exception|what\(\)|abort|fatal|not expected", line, re.I):
            return line[:400]
    return lines[-1][:400] if lines else "(no output)"


def run_capped(args, timeout, env=None):
    """Runs args for at most timeout seconds; returns (exit code or 'timeout', stdout, stderr)."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=max(timeout, 1),
                              env=env)
        return proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return "timeout", out, err


def ruche_command(ruche, cfg, out_dir):
    spec, window = MODELS[cfg["model"]], cfg["window"]
    return [ruche, "train", "--model", cfg["model"], "--data", "synthetic",
            "--synthetic-shape", ",".join(map(str, spec["shape"])),
            "--synthetic-classes", str(spec["classes"]),
            "--device", "cuda", "--precision", cfg["precision"], "--cudnn-benchmark",
            "--batch-size", str(cfg["batch"]), "--max-steps", str(window * (cfg["windows"] + 1)),
            "--log-every", str(window),
            "--optimizer", "sgd", "--lr", str(LR), "--momentum", str(MOMENTUM), "--nesterov",
            "--weight-decay", str(WEIGHT_DECAY), "--no-decay-bn-bias", "--lr-policy", "fixed",
            "--warmup-epochs", "0", "--warmup-steps", "0", "--val-fraction", "0",
            "--no-augment", "--no-checkpoint", "--out", out_dir]


def run_ruche(ruche, cfg, timeout):
    with tempfile.TemporaryDirectory(prefix="ruche-gpu-throughput-") as out_dir:
        cmd = ruche_command(ruche, cfg, out_dir)
        code, stdout, stderr = run_capped(cmd, timeout)
        train = []
        metrics = pathlib.Path(out_dir) / "metrics.jsonl"
        if metrics.exists():
            for line in metrics.read_text().splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut by the time cap
                if (r.get("split") or r.get("kind")) == "train" and "img_per_s" in r:
                    train.append(r)
    # The first log interval is the warm-up; each later one is a timed window.
    rates = [r["img_per_s"] for r in train[1:]]
    peaks = [r["gpu_peak_mib"] for r in train if "gpu_peak_mib" in r]
    result = {"command": shlex.join(cmd), "exit": code}
    if code != 0 and not rates:
        result["error"] = (f"timed out after {timeout:.0f} s" if code == "timeout"
                           else error_line(stdout, stderr))
        return result
    if not rates:
        result["error"] = f"no timed log interval in metrics.jsonl ({len(train)} train lines)"
        return result
    result["img_per_s"] = common.summary(rates)
    if peaks:
        result["peak_mib"] = max(peaks)
    else:
        result["note"] = "metrics.jsonl has no gpu_peak_mib"
    if code != 0:
        result["note"] = (f"cut after {len(rates)} of {cfg['windows']} windows: "
                          + (f"time cap {timeout:.0f} s" if code == "timeout"
                             else error_line(stdout, stderr)))
    return result


def run_torch(cfg, timeout):
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--torch-worker",
           json.dumps(cfg)]
    code, stdout, stderr = run_capped(cmd, timeout)
    result = {"exit": code}
    if code != 0:
        result["error"] = (f"timed out after {timeout:.0f} s (cap)" if code == "timeout"
                           else error_line(stdout, stderr))
        return result
    data = json.loads(stdout.strip().splitlines()[-1])
    result["img_per_s"] = common.summary(data["img_per_s"])
    result["peak_mib"] = data["peak_mib"]
    result["warmup_s"] = data["warmup_s"]
    return result


def find_ruche(path):
    p = pathlib.Path(path).resolve()
    if p.is_dir():
        p = p / "ruche"
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise SystemExit(f"gpu_throughput: {p} is not an executable ruche (give a build "
                         "directory or the ruche binary)")
    return str(p)


def cuda_device():
    """(card name, torch module) of the first CUDA device, or (None, reason). Never creates a
    CUDA context in this process (the runs are subprocesses and want the whole card)."""
    try:
        import torch
    except ImportError as e:
        smi = shutil.which("nvidia-smi") and subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
        if smi:
            raise SystemExit(f"gpu_throughput: a GPU is here ({smi.splitlines()[0]}) but torch "
                             f"is not importable ({e}); run with a python that has PyTorch")
        return None, "no torch and no nvidia-smi GPU"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees none"
    return torch.cuda.get_device_name(0), torch


def fmt_rate(side):
    if not side:
        return "not run"
    if "img_per_s" not in side:
        return "failed"
    s = side["img_per_s"]
    return f"{s['median']:.0f} ({s['min']:.0f}-{s['max']:.0f})"


def ratio(a, b, key="img_per_s"):
    if not a or not b or key not in a or key not in b:
        return None
    va = a[key]["median"] if isinstance(a[key], dict) else a[key]
    vb = b[key]["median"] if isinstance(b[key], dict) else b[key]
    return va / vb if vb else None


def fmt_ratio(r):
    return f"{r:.2f}x" if r is not None else "-"


# ---------------------------------------------------------------- rounds, figures, table
# (pure: tests/tools/gpu_throughput_plumbing.py runs them without CUDA)

def sides_of(args):
    """The sides to measure: --sides, with ruche_previous after ruche when --previous names one."""
    sides = list(args.sides)
    if getattr(args, "previous", None):
        at = sides.index("ruche") + 1 if "ruche" in sides else 0
        sides.insert(at, "ruche_previous")
    return sides


def eager_order(sides, rnd):
    """The eager sides of round rnd, in the order they run. Without ruche_previous: ruche then
    PyTorch, every round (as ever). With it: ruche, ruche_previous, torch rotated by the round,
    so each goes first (after an idle card, or after another's heat) as often as the others."""
    eager = [s for s in EAGER if s in sides]
    if "ruche_previous" not in eager or not eager:
        return eager
    k = rnd % len(eager)
    return eager[k:] + eager[:k]


def round_fits(remaining_s, last_round_s):
    """Whether another round of the eager sides fits: the last one's time, with 15% and 5 s to
    spare, is left (a round cut short would leave one side with a run fewer)."""
    return remaining_s >= 1.15 * last_round_s + 5


def run_rounds(rows, sides, rounds, measure, remaining, clock=time.monotonic):
    """Runs the eager sides round by round: in each, every row, its sides in eager_order.
    measure(row, side, cap_s, rnd) does one run. With ruche_previous, a round after the first
    starts only when round_fits; returns how many rounds ran."""
    done, last = 0, None
    for rnd in range(rounds):
        if "ruche_previous" in sides and last is not None and not round_fits(remaining(), last):
            break
        start = clock()
        for row in rows:
            for side in eager_order(sides, rnd):
                measure(row, side, RUN_CAP_S, rnd)
        last = clock() - start
        done += 1
    return done


def pool_best(rows):
    """One figure per side: with --rounds > 1, the windows of all its runs pooled, the highest
    peak; a side with no good run keeps its last run (its error)."""
    for row in rows:
        row["best"] = {}
        for side, runs in row["runs"].items():
            ok = [r for r in runs if "img_per_s" in r]
            if not ok:
                row["best"][side] = runs[-1] if runs else None
                continue
            pooled = dict(ok[-1], img_per_s=common.summary(
                [x for r in ok for x in r["img_per_s"]["samples"]]))
            peaks = [r["peak_mib"] for r in ok if "peak_mib" in r]
            if peaks:
                pooled["peak_mib"] = max(peaks)
            pooled.pop("round", None)
            row["best"][side] = pooled


def round_ratios(row, a, b):
    """a / b per round in which both ran (medians of that round's windows), in round order."""
    by_round = {}
    for side in (a, b):
        for r in row["runs"].get(side, []):
            if "img_per_s" in r and "round" in r:
                by_round.setdefault(r["round"], {})[side] = r
    return [round(ratio(v[a], v[b]), 4) for _, v in sorted(by_round.items())
            if a in v and b in v and ratio(v[a], v[b]) is not None]


def add_ratios(rows):
    """The ratios of every row (ruche / the other side); with ruche_previous also new /
    previous (pooled and per round) and previous / PyTorch eager."""
    amp = {(r["model"], r["batch"]): r["best"].get("torch") for r in rows
           if r["precision"] == "bf16"}
    for row in rows:
        b = row["best"]
        row["ratio_vs_torch"] = ratio(b.get("ruche"), b.get("torch"))
        row["ratio_vs_torch_compile"] = ratio(b.get("ruche"), b.get("torch_compile"))
        row["ratio_vs_torch_eager_amp"] = ratio(b.get("ruche"),
                                                amp.get((row["model"], row["batch"])))
        row["ratio_peak_mib"] = ratio(b.get("ruche"), b.get("torch"), "peak_mib")
        if "ruche_previous" in row["runs"]:
            row["ratio_vs_previous"] = ratio(b.get("ruche"), b.get("ruche_previous"))
            row["ratio_vs_previous_rounds"] = round_ratios(row, "ruche", "ruche_previous")
            row["ratio_previous_vs_torch"] = ratio(b.get("ruche_previous"), b.get("torch"))
            row["ratio_peak_mib_vs_previous"] = ratio(b.get("ruche"), b.get("ruche_previous"),
                                                      "peak_mib")


def table_lines(rows):
    """The Markdown table; the previous ruche's two columns only when it ran."""
    previous = any("ruche_previous" in r["runs"] for r in rows)
    head = ("| model | batch | precision | ruche img/s | "
            + ("previous img/s | vs previous | " if previous else "")
            + "PyTorch eager | PyTorch compile | vs eager | vs compile | vs eager AMP | "
              "ruche peak MiB | PyTorch peak MiB | memory ratio |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        b = r["best"]
        peak = lambda s: (f"{b[s]['peak_mib']:.0f}" if b.get(s) and "peak_mib" in b[s] else "-")
        prev = ""
        if previous:
            per_round = r.get("ratio_vs_previous_rounds") or []
            prev = (f"{fmt_rate(b.get('ruche_previous'))} | "
                    f"{fmt_ratio(r.get('ratio_vs_previous'))}"
                    + (f" ({', '.join(f'{x:.2f}' for x in per_round)})"
                       if len(per_round) > 1 else "") + " | ")
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['precision']} | {fmt_rate(b.get('ruche'))} | "
            f"{prev}{fmt_rate(b.get('torch'))} | {fmt_rate(b.get('torch_compile'))} | "
            f"{fmt_ratio(r['ratio_vs_torch'])} | {fmt_ratio(r['ratio_vs_torch_compile'])} | "
            f"{fmt_ratio(r['ratio_vs_torch_eager_amp'])} | {peak('ruche')} | {peak('torch')} | "
            f"{fmt_ratio(r['ratio_peak_mib'])} |")
    return lines


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ruche", help="build directory or ruche executable")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int,
                        help="batch sizes for every chosen model (default: each model's own)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    parser.add_argument("--previous", metavar="RUCHE",
                        help="an older ruche (build directory or executable): side "
                             "ruche_previous, in every round beside ruche and PyTorch eager")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs per side and configuration, ruche and PyTorch alternating")
    parser.add_argument("--budget-s", type=float, default=510,
                        help="whole benchmark's wall-clock budget; runs that no longer fit "
                             "are listed as not run")
    parser.add_argument("--compile-cap-s", type=float, default=180,
                        help="one torch.compile run at most (compilation included)")
    parser.add_argument("--results-dir", default=str(common.RESULTS))
    parser.add_argument("--note", action="append", default=[])
    return parser


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--torch-worker":
        torch_worker(json.loads(sys.argv[2]))
        return 0
    args = build_parser().parse_args()
    sides = sides_of(args)

    card, torch = cuda_device()
    if card is None:
        print(f"gpu_throughput: no CUDA device ({torch}); nothing measured, nothing written")
        return 0
    ruche = find_ruche(args.ruche)
    previous = find_ruche(args.previous) if args.previous else None
    started = time.monotonic()
    deadline = started + args.budget_s

    def remaining():
        return deadline - time.monotonic()

    devices = run_capped([ruche, "devices"], 60)[1].strip()
    ruche_version = run_capped([ruche, "--version"], 30)[1].strip() or "?"
    previous_version = (run_capped([previous, "--version"], 30)[1].strip() or "?"
                        if previous else None)
    configs = []
    for model in args.models:
        for batch in args.batches or MODELS[model]["batches"]:
            for precision in args.precisions:
                configs.append({"model": model, "batch": batch, "precision": precision,
                                "window": MODELS[model]["window"], "windows": args.windows})
    rows = [{**c, "runs": {s: [] for s in sides}} for c in configs]

    def measure(row, side, cap, rnd=0):
        cfg = {k: row[k] for k in ("model", "batch", "precision", "window", "windows")}
        label = f"{row['model']} batch {row['batch']} {row['precision']} {side}"
        if remaining() < 20:
            row["runs"][side].append({"error": "not run: time budget spent"})
            print(f"  {label}: not run (time budget)", flush=True)
            return
        timeout = min(cap, remaining())
        if side == "ruche":
            r = run_ruche(ruche, cfg, timeout)
        elif side == "ruche_previous":
            r = run_ruche(previous, cfg, timeout)
        else:
            r = run_torch(dict(cfg, compile=side == "torch_compile"), timeout)
        if previous:
            r["round"] = rnd
        row["runs"][side].append(r)
        what = (f"{r['img_per_s']['median']:.0f} img/s, "
                f"peak {r.get('peak_mib', float('nan')):.0f} MiB"
                if "img_per_s" in r else f"FAILED: {r['error']}")
        print(f"  {label}: {what} [{time.monotonic() - started:.0f} s]", flush=True)

    # Eager sides first (ruche and PyTorch alternating, the previous ruche in turn with them),
    # then torch.compile as far as time goes, bf16 first (the AMP comparison is the headline).
    rounds_run = run_rounds(rows, sides, args.rounds, measure, remaining)
    if "torch_compile" in sides:
        for row in sorted(rows, key=lambda r: r["precision"] != "bf16"):
            measure(row, "torch_compile", args.compile_cap_s)

    pool_best(rows)
    add_ratios(rows)

    elapsed = time.monotonic() - started
    versions = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                "cudnn_torch": torch.backends.cudnn.version(), "ruche": ruche_version,
                "ruche_devices": devices.splitlines(), "python": platform.python_version()}
    if previous:
        versions["ruche_previous"] = previous_version
    record = {
        "benchmark": "gpu_throughput",
        "what": "training images/s and peak device memory, ruche train --device cuda vs "
                "PyTorch (eager and torch.compile, channels_last) on the same card, synthetic "
                "input copied from host memory every step, SGD Nesterov momentum 0.9, weight "
                "decay 5e-4 (none on BN/bias); fp32 strict (no TF32), tf32, bf16 (autocast, TF32 "
                "for what stays fp32); cuDNN benchmark mode on both sides",
        "card": card,
        "machine": common.machine(),
        "versions": versions,
        "command": shlex.join([sys.executable] + sys.argv),
        "models": MODELS,
        "windows": args.windows,
        "rounds": args.rounds,
        "budget_s": args.budget_s,
        "compile_cap_s": args.compile_cap_s,
        "elapsed_s": round(elapsed, 1),
        "notes": list(args.note),
        "results": rows,
    }
    if previous:
        record.update(rounds_run=rounds_run, ruche=ruche, ruche_previous=previous)
    notes = list(args.note)
    if previous:
        notes += [
            f"New ruche {ruche} (`--version`: {ruche_version}) against the previous ruche "
            f"{previous} (`--version`: {previous_version}), same flags; vs previous = new / "
            "previous (>1: the new one faster), pooled windows, and per round in brackets.",
            f"{rounds_run} of {args.rounds} round(s) ran (a round starts only when the last "
            "one's time fits the budget); in each, ruche, the previous ruche and PyTorch eager "
            "one process each, in an order rotated by one every round; median (min-max) over "
            f"the {args.windows} timed windows after a warm-up window of each, pooled over the "
            "rounds.",
        ]
    else:
        notes.append(
            f"{args.rounds} process(es) per side and configuration (ruche and PyTorch eager "
            f"alternating); median (min-max) over the {args.windows} timed windows after a "
            "warm-up window of each, pooled: windows rather than alternating processes, as the "
            "lent card runs nothing else and process starts would eat its few minutes.")
    notes += [
        "torch.compile runs after all eager runs, bf16 first, each capped at "
        f"{args.compile_cap_s:.0f} s with its compilation; 'not run' = the budget "
        f"({args.budget_s:.0f} s) was spent.",
        "Peak memory: ruche's gpu_peak_mib (tensors held) vs torch.cuda.max_memory_allocated, "
        "both over the whole run (warm-up included).",
    ]
    failures = [f"{r['model']} batch {r['batch']} {r['precision']} {side}: {x['error']}"
                for r in rows for side, x in r["best"].items() if x and "error" in x]
    lines = [f"# GPU training throughput: ruche vs PyTorch ({card})", "",
             f"Card: {record['machine'].get('gpu', card)}; torch {torch.__version__} (CUDA "
             f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}); ruche "
             f"{ruche_version}"
             + (f", previous ruche {previous_version}" if previous else "")
             + f". img/s: median (min-max) over {args.windows} windows. Ratios: "
             "ruche / PyTorch (>1: ruche faster; for memory, ruche larger)"
             + ("; vs previous: new ruche / previous ruche" if previous else "") + ".", ""]
    lines += table_lines(rows)
    if failures:
        lines += ["", "Failed or not run:", ""] + [f"- {f}" for f in failures]
    lines += ["", "ruche's command, e.g.: `" + next(
        (x["command"] for r in rows for x in r["runs"].get("ruche", []) if "command" in x),
        "(ruche not run)") + "`"]
    lines += common.footer_lines(notes, record["command"], "", elapsed)
    path = common.write_results(f"gpu_throughput-{card_slug(card)}", record, "\n".join(lines),
                                directory=args.results_dir)
    print("\n".join(lines[4:4 + len(rows) + 2]))
    print(f"gpu_throughput: wrote {path}.json and {path}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
