#!/usr/bin/env python3
"""Weak scaling of data-parallel training on one machine (docs/ARCHITECTURE.md,
Benchmarks): images/s of 2 ranks x 1 thread against 1 rank x 1 thread, the same per-rank batch,
threads and input, in the same run. Goal: efficiency >= 90%.

  efficiency = img/s(2 ranks) / (2 x img/s(1 rank))

Each configuration is `mpirun -np N ruche train` (the 1-rank run through mpirun too, so both pay
the same launcher); img/s is the run's steady-state global rate from its metrics.jsonl (the log
intervals after the first, which holds the warm-up steps). Runs alternate 1, 2, 1, 2, ...
after a warm-up pair that is not counted; the efficiency is the ratio of the medians, and each
round's own ratio (adjacent runs) gives its spread.

  fashion_cnn  Fashion-MNIST (the default data), batch 64 per rank
  resnet18     synthetic 3x32x32 (CIFAR stem), batch 16 per rank

Where `ruche devices` lists CUDA devices, the same run then measures weak scaling on them: 1 rank
to every local GPU (1, 2, 4, ... and all), one rank per GPU (`mpirun -np N ruche train --device
cuda`: gradients over NCCL), the same per-rank batch and the machine's cores shared out equally
(cores // GPUs threads per rank, whatever N), rounds alternating 1, 2, 4, ..., N after a warm-up
round. Efficiency at N = median img/s(N) / (N x median img/s(1)).

  fashion_cnn  Fashion-MNIST, batch 256 per GPU
  resnet18     synthetic 3x32x32, batch 128 per GPU

usage: scaling.py BUILD_DIR [--rounds 5] [--models fashion_cnn resnet18] [--gpu-rounds 3]
                  [--no-gpu] [--note TEXT]
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

# Steps per run: `interval` steps per log line; the first interval is warm-up. Sized so that the
# whole benchmark stays within ~8 minutes on a busy 2-core machine.
MODELS = {
    "fashion_cnn": {"data": None, "batch": 64, "interval": 10, "intervals": 4},
    "resnet18": {"data": "synthetic", "shape": (3, 32, 32), "batch": 16, "interval": 3,
                 "intervals": 3},
}
# One rank per GPU: a GPU step is short, so more steps per interval than on the CPU.
GPU_MODELS = {
    "fashion_cnn": {"data": None, "batch": 256, "interval": 20, "intervals": 4},
    "resnet18": {"data": "synthetic", "shape": (3, 32, 32), "batch": 128, "interval": 10,
                 "intervals": 4},
}
THREADS = 1
RANK_COUNTS = (1, 2)


def train_command(build, model, ranks, out_dir, device="cpu", threads=THREADS):
    spec = (GPU_MODELS if device == "cuda" else MODELS)[model]
    cmd = common.ruche_train_command(
        build, ranks, model, spec,
        ["--batch-size", spec["batch"], "--max-steps", spec["interval"] * spec["intervals"],
         "--log-every", spec["interval"], "--val-fraction", "0", "--threads", threads,
         "--out", out_dir] + (["--device", "cuda"] if device == "cuda" else []))
    if device == "cuda":  # several threads per rank: Open MPI's default binds each to one core
        cmd[1:1] = ["--bind-to", "none"]
    return cmd


def one_run(build, model, ranks, device="cpu", threads=THREADS):
    spec = (GPU_MODELS if device == "cuda" else MODELS)[model]
    with tempfile.TemporaryDirectory(prefix="ruche-scaling-") as out_dir:
        cmd = train_command(build, model, ranks, out_dir, device, threads)
        proc = common.run_with_cpu_share(cmd, common.ruche_env(threads))
        if proc["returncode"] != 0:
            raise SystemExit(f"scaling: {shlex.join(cmd)} failed ({proc['returncode']}):\n"
                             f"{proc['stdout'][-2000:]}\n{proc['stderr'][-2000:]}")
        rate = common.steady_img_per_s(f"{out_dir}/metrics.jsonl", spec["batch"] * ranks)
        return rate, proc["job_cores"], proc["other_cores"]


def local_gpus(build):
    """The CUDA devices `ruche devices` lists (0 without a device or without a CUDA build)."""
    out = subprocess.run([f"{build}/ruche", "devices"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("cuda:"))


def gpu_rank_counts(gpus):
    """1, 2, 4, ... below `gpus`, then `gpus` itself: [1] for one GPU, [1, 2, 4, 6] for six."""
    counts = [1]
    while counts[-1] * 2 < gpus:
        counts.append(counts[-1] * 2)
    if gpus > 1:
        counts.append(gpus)
    return counts


def gpu_scaling(build, models, rounds, gpus, started):
    """Weak scaling from 1 rank to every local GPU, one rank per GPU; the record's "gpu" part."""
    counts = gpu_rank_counts(gpus)
    threads = max(1, (os.cpu_count() or 1) // gpus)
    rows = []
    for model in models:
        samples = {n: [] for n in counts}
        round_eff = {n: [] for n in counts[1:]}
        for rnd in range(rounds + 1):  # round 0: warm-up (cuDNN's search, NCCL's first setup)
            rates = {}
            for n in counts:
                rates[n], job, _ = one_run(build, model, n, "cuda", threads)
                print(f"  {model} cuda round {rnd}{' (warm-up)' if rnd == 0 else ''} {n} GPU(s): "
                      f"{rates[n]:.1f} img/s, cores used by the job {job:.2f} "
                      f"[{time.time() - started:.0f} s]", flush=True)
            if rnd > 0:
                for n in counts:
                    samples[n].append(rates[n])
                for n in counts[1:]:
                    round_eff[n].append(rates[n] / (n * rates[1]))
        stats = {str(n): common.summary(samples[n]) for n in counts}
        eff = {str(n): stats[str(n)]["median"] / (n * stats["1"]["median"]) for n in counts[1:]}
        spec = GPU_MODELS[model]
        rows.append({"model": model, "batch_per_rank": spec["batch"],
                     "input": "fashion-mnist 1x28x28" if spec["data"] is None
                     else "synthetic " + "x".join(map(str, spec["shape"])),
                     "img_per_s": stats, "efficiency": eff,
                     "efficiency_per_round": {str(n): common.summary(v)
                                              for n, v in round_eff.items()}})
        print(f"{model} on GPUs: " + ", ".join(
            f"{n} {fmt(stats[str(n)])} img/s" + (f" ({100 * eff[str(n)]:.1f}%)" if n > 1 else "")
            for n in counts), flush=True)
    return {
        "what": f"weak scaling of data-parallel training on {gpus} local GPU(s), one rank per "
                "GPU (--device cuda, NCCL), same per-rank batch",
        "definition": "efficiency at N = img/s(N) / (N x img/s(1)); img/s is global, steady state",
        "gpus": gpus, "rank_counts": counts, "threads_per_rank": threads,
        "env": f"OMP_NUM_THREADS={threads}",
        "per_round_commands": {m: {str(n): f"OMP_NUM_THREADS={threads} "
                                   + shlex.join(train_command(build, m, n, "TMPDIR", "cuda",
                                                              threads))
                                   for n in counts} for m in models},
        "models": GPU_MODELS, "rounds": rounds, "warmup_rounds": 1, "results": rows,
    }


fmt = common.median_range  # "median (min-max)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", nargs="?")
    parser.add_argument("--render", metavar="JSON",
                        help="rewrite the Markdown of a result from its JSON (no runs)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--gpu-rounds", type=int, default=3)
    parser.add_argument("--no-gpu", action="store_true",
                        help="CPU ranks only, even where CUDA devices exist")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the result's notes (e.g. the machine was busy)")
    args = parser.parse_args()
    if args.render:
        record = json.loads(pathlib.Path(args.render).read_text())
        pathlib.Path(args.render).with_suffix(".md").write_text(markdown(record))
        return
    if not args.build:
        parser.error("BUILD_DIR is required")
    build = str(pathlib.Path(args.build).resolve())
    versions = common.ruche_versions(build)
    started = time.time()
    loadavg_before = os.getloadavg()
    rows = []
    for model in args.models:
        samples = {n: [] for n in RANK_COUNTS}
        cores = {n: {"job": [], "other": []} for n in RANK_COUNTS}
        round_eff = []
        for rnd in range(args.rounds + 1):  # round 0: warm-up (page cache, CPU frequency)
            rates, used = {}, {}
            for n in RANK_COUNTS:  # 1 2 1 2 ...: noise hits both alike
                rates[n], job, other = one_run(build, model, n)
                used[n] = (job, other)
                print(f"  {model} round {rnd}{' (warm-up)' if rnd == 0 else ''} {n} rank(s): "
                      f"{rates[n]:.1f} img/s, cores used by the job {job:.2f}, by the rest of "
                      f"the machine {other:.2f} [{time.time() - started:.0f} s]", flush=True)
            if rnd > 0:
                for n in RANK_COUNTS:
                    samples[n].append(rates[n])
                    cores[n]["job"].append(used[n][0])
                    cores[n]["other"].append(used[n][1])
                round_eff.append(rates[2] / (2 * rates[1]))
        stats = {str(n): common.summary(samples[n]) for n in RANK_COUNTS}
        eff = stats["2"]["median"] / (2 * stats["1"]["median"])
        rows.append({"model": model, "batch_per_rank": MODELS[model]["batch"],
                     "input": "fashion-mnist 1x28x28" if MODELS[model]["data"] is None
                     else "synthetic " + "x".join(map(str, MODELS[model]["shape"])),
                     "img_per_s": stats, "efficiency": eff,
                     "efficiency_per_round": common.summary(round_eff),
                     "cores_used": {str(n): {k: common.summary(v) for k, v in cores[n].items()}
                                    for n in RANK_COUNTS},
                     "per_rank_img_per_s_2_ranks": stats["2"]["median"] / 2})
        print(f"{model}: 1 rank {fmt(stats['1'])} img/s, 2 ranks {fmt(stats['2'])} img/s, "
              f"efficiency {100 * eff:.1f}% (per round {fmt(common.summary(round_eff), 100, 1)}"
              "%; goal >= 90%)", flush=True)
    gpus = 0 if args.no_gpu else local_gpus(build)
    gpu = gpu_scaling(build, args.models, args.gpu_rounds, gpus, started) if gpus else None
    elapsed = time.time() - started
    notes = list(args.note)
    if gpu is None:
        notes.append("GPU weak scaling not run: " + ("--no-gpu" if args.no_gpu
                                                     else "`ruche devices` lists no CUDA device"))
    notes.append(common.load_note(loadavg_before))
    record = {
        "benchmark": "scaling",
        "what": "weak scaling efficiency of data-parallel training, 2 ranks x 1 thread vs "
                "1 rank x 1 thread, same per-rank batch, one machine (Open MPI, shared memory), CPU",
        "goal": "efficiency >= 90%",
        "definition": "efficiency = img/s(2 ranks) / (2 x img/s(1 rank)); img/s is global, "
                      "steady state (log intervals after the first)",
        "machine": common.machine(),
        "versions": versions,
        "command": " ".join([sys.executable] + sys.argv),
        "env": f"OMP_NUM_THREADS={THREADS}; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset",
        "per_round_commands": {m: {str(n): f"OMP_NUM_THREADS={THREADS} "
                                   + shlex.join(train_command(build, m, n, "TMPDIR"))
                                   for n in RANK_COUNTS} for m in args.models},
        "models": MODELS,
        "rounds": args.rounds,
        "warmup_rounds": 1,
        "elapsed_s": round(elapsed, 1),
        "notes": notes,
        "results": rows,
    }
    if gpu is not None:
        record["gpu"] = gpu
    path = common.write_results("scaling", record, markdown(record))
    print(f"wrote {path}.json and .md")


SLACK = 0.25  # cores


def quiet_rounds(row, cores):
    """The rounds in which the rest of the machine left each run the cores it needs (used less
    than cores - ranks + SLACK meanwhile), and the efficiency of each (its two adjacent runs)."""
    c1, c2 = row["cores_used"]["1"]["other"]["samples"], row["cores_used"]["2"]["other"]["samples"]
    r1, r2 = row["img_per_s"]["1"]["samples"], row["img_per_s"]["2"]["samples"]
    return [(i + 1, r2[i] / (2 * r1[i])) for i in range(len(r1))
            if c1[i] < cores - 1 + SLACK and c2[i] < cores - 2 + SLACK]


def markdown(record):
    m, v = record["machine"], record["versions"]
    lines = ["# Weak scaling: 2 ranks x 1 thread vs 1 rank x 1 thread (CPU, one machine)", "",
             f"Machine: {m.get('cpu', '?')}, {m['cores']} cores, {m['memory_gib']} GiB, GPU "
             f"{m['gpu']}; {v['ruche']} (git {v['ruche_git']}). Open MPI on this one machine "
             "(shared memory, no network), OMP_NUM_THREADS=1 per rank, the same batch per rank. "
             f"Median (min-max) of {record['rounds']} alternating rounds (1 rank, 2 ranks) after "
             "a warm-up round; img/s is global and steady state. Efficiency = median img/s(2) / "
             "(2 x median img/s(1)); per round: that round's two adjacent runs. Goal: >= 90%.",
             "",
             "| model | input | batch/rank | 1 rank img/s | 2 ranks img/s | per rank at 2 | "
             "efficiency | per round | cores used by the job, 1 / 2 ranks | cores used by the "
             "rest of the machine meanwhile, 1 / 2 ranks |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["results"]:
        s = r["img_per_s"]
        lines.append(f"| {r['model']} | {r['input']} | {r['batch_per_rank']} | {fmt(s['1'])} | "
                     f"{fmt(s['2'])} | {r['per_rank_img_per_s_2_ranks']:.1f} | "
                     f"{100 * r['efficiency']:.1f}% | "
                     f"{fmt(r['efficiency_per_round'], 100, 1)}% | "
                     f"{fmt(r['cores_used']['1']['job'], 1, 2)} / "
                     f"{fmt(r['cores_used']['2']['job'], 1, 2)} | "
                     f"{fmt(r['cores_used']['1']['other'], 1, 2)} / "
                     f"{fmt(r['cores_used']['2']['other'], 1, 2)} |")
    lines += ["", "Rounds in which the rest of the machine left each run its cores (used less than "
              f"cores - ranks + {SLACK} cores meanwhile: < {m['cores'] - 1 + SLACK} during the "
              f"1-rank run, < {m['cores'] - 2 + SLACK} during the 2-rank run), efficiency of each "
              "(its two adjacent runs):", ""]
    for r in record["results"]:
        q = quiet_rounds(r, m["cores"])
        lines.append(f"- {r['model']}: " + (", ".join(f"round {i}: {100 * e:.1f}%" for i, e in q)
                                           if q else "none"))
    lines += ["", "Cores used: CPU seconds over wall seconds of each whole run (start-up and the "
              "final test pass included), the job's from getrusage (mpirun and its ranks), the "
              "rest of the machine's from /proc/stat minus the job's.", ""]
    lines += ["", "Commands (one run each):", ""]
    for model, cmds in record["per_round_commands"].items():
        for n, cmd in cmds.items():
            lines.append(f"- {model}, {n} rank(s): `{cmd}`")
    if record.get("gpu"):
        lines += gpu_markdown(record["gpu"])
    lines += common.footer_lines(record["notes"], record["command"], record["env"],
                                 record["elapsed_s"])
    return "\n".join(lines)


def gpu_markdown(gpu):
    counts = gpu["rank_counts"]
    lines = ["", f"## Weak scaling on GPUs: 1 to {gpu['gpus']} rank(s), one per GPU (NCCL)", "",
             f"`--device cuda`, {gpu['threads_per_rank']} thread(s) per rank whatever the rank "
             f"count, the same batch per rank. Median (min-max) of {gpu['rounds']} alternating "
             "rounds after a warm-up round; efficiency at N = median img/s(N) / (N x median "
             "img/s(1)), per round from that round's runs.", "",
             "| model | input | batch/rank | " + " | ".join(f"{n} GPU img/s" for n in counts)
             + "".join(f" | efficiency at {n} | per round" for n in counts[1:]) + " |",
             "|" + "---|" * (3 + len(counts) + 2 * len(counts[1:]))]
    for r in gpu["results"]:
        s = r["img_per_s"]
        lines.append(f"| {r['model']} | {r['input']} | {r['batch_per_rank']} | "
                     + " | ".join(fmt(s[str(n)]) for n in counts)
                     + "".join(f" | {100 * r['efficiency'][str(n)]:.1f}% | "
                               f"{fmt(r['efficiency_per_round'][str(n)], 100, 1)}%"
                               for n in counts[1:]) + " |")
    lines += ["", "Commands (one run each):", ""]
    for model, cmds in gpu["per_round_commands"].items():
        for n, cmd in cmds.items():
            lines.append(f"- {model}, {n} GPU(s): `{cmd}`")
    return lines


if __name__ == "__main__":
    main()
