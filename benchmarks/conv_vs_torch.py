#!/usr/bin/env python3
"""Convolution layer training work (forward + backward data + backward weights), ruche's CPU op
table against PyTorch (NCHW and channels_last, the faster counts), alternating rounds.

usage: conv_vs_torch.py BUILD_DIR [--rounds 5] [--threads 1 2]
"""
import argparse
import json
import subprocess
import sys
import time

import torch

import common

# Layers of the default CNN and a ResNet stage, at CPU-sized batches.
LAYERS = [
    {"name": "fashion_conv1", "n": 64, "c": 1, "h": 28, "w": 28, "k": 32, "kernel": 3, "pad": 1},
    {"name": "fashion_conv2", "n": 64, "c": 32, "h": 14, "w": 14, "k": 64, "kernel": 3, "pad": 1},
    {"name": "resnet_3x3_64", "n": 8, "c": 64, "h": 32, "w": 32, "k": 64, "kernel": 3, "pad": 1},
]


def torch_ms(layer, threads, channels_last, iters=10, warmup=3):
    torch.set_num_threads(threads)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.rand(layer["n"], layer["c"], layer["h"], layer["w"]).to(memory_format=fmt)
    x.requires_grad_(True)
    conv = torch.nn.Conv2d(layer["c"], layer["k"], layer["kernel"], padding=layer["pad"])
    conv = conv.to(memory_format=fmt)
    dy = torch.rand_like(conv(x)).to(memory_format=fmt)
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        y = conv(x)
        y.backward(dy)
        t1 = time.perf_counter()
        x.grad = None
        conv.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append((t1 - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def ruche_ms(build, layer, threads):
    args = [f"{build}/conv_bench", "--threads", str(threads)]
    for key in ("n", "c", "h", "w", "k", "kernel", "pad"):
        args += [f"--{key}", str(layer[key])]
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         env={"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)["ms"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    blas = common.require_openblas(torch)

    rows = []
    for threads in args.threads:
        for layer in LAYERS:
            samples = {"ruche": [], "torch_nchw": [], "torch_channels_last": []}
            for _ in range(args.rounds):  # A B A B: noise hits both sides alike
                samples["ruche"].append(ruche_ms(args.build, layer, threads))
                samples["torch_nchw"].append(torch_ms(layer, threads, False))
                samples["torch_channels_last"].append(torch_ms(layer, threads, True))
            stats = {k: common.summary(v) for k, v in samples.items()}
            best_torch = min(("torch_nchw", "torch_channels_last"),
                             key=lambda k: stats[k]["median"])
            ratio = stats[best_torch]["median"] / stats["ruche"]["median"]
            rows.append({"layer": layer, "threads": threads, "stats": stats,
                         "torch_best": best_torch, "speedup_vs_torch": ratio})
            print(f"{layer['name']:>14} threads {threads}: ruche {stats['ruche']['median']:.2f} ms, "
                  f"{best_torch} {stats[best_torch]['median']:.2f} ms, ratio {ratio:.2f}x",
                  flush=True)

    record = {
        "benchmark": "conv_vs_torch",
        "what": "conv2d forward + backward data + backward weights, one layer, fp32 CPU",
        "machine": common.machine(),
        "versions": {"torch": torch.__version__, "torch_blas": blas,
                     "ruche_onednn": "Debian libdnnl 2.6.3"},
        "command": " ".join(sys.argv),
        "rounds": args.rounds,
        "results": rows,
    }
    lines = ["# conv2d training work: ruche vs PyTorch (CPU, fp32)", "",
             f"Machine: {record['machine'].get('cpu', '?')}, {record['machine']['cores']} cores; "
             f"torch {torch.__version__} ({blas}). Median of {args.rounds} alternating rounds, "
             "ms per forward+backward; ratio = best PyTorch layout / ruche (>1: ruche faster).", "",
             "| layer | threads | ruche ms | PyTorch ms (layout) | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        s = r["stats"]
        lines.append(f"| {r['layer']['name']} | {r['threads']} | {s['ruche']['median']:.2f} "
                     f"({s['ruche']['min']:.2f}-{s['ruche']['max']:.2f}) | "
                     f"{s[r['torch_best']]['median']:.2f} ({r['torch_best'][6:]}) | "
                     f"{r['speedup_vs_torch']:.2f}x |")
    path = common.write_results("conv_vs_torch", record, "\n".join(lines) + "\n")
    print(f"wrote {path}.json and .md")


if __name__ == "__main__":
    main()
