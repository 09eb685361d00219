#!/usr/bin/env python3
"""Input pipeline throughput: JPEGs decoded and augmented into training batches per second,
ruche's ShardLoader (`ruche data-bench` over `ruche convert` shards) against PyTorch's
DataLoader with torchvision's transforms on the same JPEG files, in the same run, with 1 and 2
workers; then how many cores each would need to feed one GPU training ResNet-50.

  data      a synthetic ImageNet-like ImageFolder made here with PIL (smooth colour fields,
            ellipses and noise: --images JPEGs of 500x375 at quality 90 in 10 classes), cached
            under BUILD/input_pipeline/, and its shards from `ruche convert imagefolder`
            (bytes kept, no re-encoding), cached beside it
  torch     torchvision.datasets.ImageFolder (PIL decode), RandomResizedCrop(224),
            RandomHorizontalFlip, ToTensor, Normalize(ImageNet mean/std); DataLoader shuffled,
            batch 32, drop_last, num_workers = workers, persistent_workers, one torch thread per
            process
  ruche     ruche data-bench --workers N: ShardLoader as `ruche train --data SHARDS` opens it
            (random-resized-crop 224, flip, normalise, float CHW batches of 32), N decode threads;
            and again with --no-dct-scaling (full-size decode, as PIL) to show what DCT scaling buys

Each round runs every (side, workers) once in alternation, one process each: --warmup batches,
then --batches timed (epochs restart as needed). Per run: images/s over the wall clock, and
images per CPU-second (every thread and worker process of the side over the timed window): the
rate per core, what one core kept busy delivers, and the figure least moved by other processes
on a shared machine (the load average is recorded). Cores to feed a GPU = its ResNet-50 training
rate / img per CPU-second.

usage: input_pipeline.py BUILD_DIR [--rounds 5] [--workers 1 2] [--images 600] [--batches 24]
       input_pipeline.py --torch-worker ROOT WORKERS BATCH WARMUP BATCHES   (one PyTorch run)
"""
import argparse
import glob
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

import common

BATCH = 32
CLASSES = 10
SIZE = (500, 375)  # ImageNet's typical landscape photo
QUALITY = 90
# The GPU rate to feed when no measured one exists (benchmarks/results/gpu_throughput-*.json):
# NVIDIA DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5 README, "Training
# performance: NVIDIA DGX A100 (8x A100 80GB)", 1 GPU, mixed precision, batch 256 (the figure
# benchmarks/results/projection-2026-12-01.md uses).
PUBLISHED_GPU = {"img_per_s": 2470.0, "what": "ResNet-50 training on one A100 80GB, mixed "
                 "precision, batch 256: published, NVIDIA DeepLearningExamples "
                 "PyTorch/Classification/ConvNets/resnet50v1.5 README (DGX A100, 1 GPU)"}


# ---------------------------------------------------------------- the data

def make_imagefolder(root: pathlib.Path, images: int) -> dict:
    """ROOT/train/class_KK/NNNNNN.JPEG; cached: a ROOT/made.json naming the same recipe."""
    recipe = {"images": images, "classes": CLASSES, "size": list(SIZE), "quality": QUALITY,
              "seed": 1}
    stamp = root / "made.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("recipe") == recipe:
        return json.loads(stamp.read_text())
    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(recipe["seed"])
    w, h = SIZE
    total = 0
    for i in range(images):
        # A photo's mix: smooth colour fields, a few hard-edged shapes, sensor-like noise (the
        # noise sets the file size near ImageNet's ~110 KB mean).
        img = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
            (w, h), Image.BICUBIC)
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            dx, dy = int(rng.integers(20, 200)), int(rng.integers(20, 200))
            draw.ellipse([x, y, x + dx, y + dy], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        pixels = np.asarray(img).astype(np.int16) + rng.normal(0, 16, (h, w, 3)).astype(np.int16)
        folder = root / "train" / f"class_{i % CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:06d}.JPEG"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, "JPEG",
                                                                        quality=QUALITY)
        total += path.stat().st_size
    made = {"recipe": recipe, "mean_file_kb": round(total / images / 1000, 1)}
    stamp.write_text(json.dumps(made) + "\n")
    return made


def make_shards(build: str, root: pathlib.Path, shards: pathlib.Path) -> str:
    """`ruche convert imagefolder ROOT -o SHARDS` (a rerun reuses complete shards)."""
    cmd = [f"{build}/ruche", "convert", "imagefolder", str(root), "-o", str(shards)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"input_pipeline: {shlex.join(cmd)} failed:\n{proc.stderr}")
    return shlex.join(cmd)


# ---------------------------------------------------------------- CPU time of a process tree

def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and all its descendants, every thread (/proc/*/stat)."""
    parent, cpu = {}, {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = open(stat).read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        p = int(stat.split("/")[2])
        parent[p] = int(fields[1])
        cpu[p] = int(fields[11]) + int(fields[12])
    tree, frontier = {pid}, [pid]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier and p not in tree]
        tree.update(frontier)
    return sum(cpu.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- PyTorch side (a subprocess)

def torch_worker(root: str, workers: int, batch: int, warmup: int, batches: int) -> None:
    import torch
    from torchvision import datasets, transforms
    torch.set_num_threads(1)
    train = transforms.Compose([
        transforms.RandomResizedCrop(224),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    dataset = datasets.ImageFolder(os.path.join(root, "train"), transform=train)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
        persistent_workers=True, worker_init_fn=lambda _: torch.set_num_threads(1))

    def batches_forever():
        while True:
            yield from loader

    stream = batches_forever()
    for _ in range(warmup):
        next(stream)
    cpu0, t0 = tree_cpu_seconds(os.getpid()), time.perf_counter()
    images = 0
    for _ in range(batches):
        x, _ = next(stream)
        images += x.shape[0]
    wall = time.perf_counter() - t0
    cpu = tree_cpu_seconds(os.getpid()) - cpu0
    print(json.dumps({"images": images, "wall_s": wall, "cpu_s": cpu}))


def run_torch(root, workers, warmup, batches) -> dict:
    cmd = [sys.executable, __file__, "--torch-worker", str(root), str(workers), str(BATCH),
           str(warmup), str(batches)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=common.ruche_env(1))
    if proc.returncode != 0:
        raise SystemExit(f"input_pipeline: PyTorch run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- ruche side

RUCHE_LINE = re.compile(r"data-bench: (\d+) images in ([\d.]+) s: .* cpu ([\d.]+) s")


def run_ruche(build, shards, workers, warmup, batches, dct_scaling) -> dict:
    cmd = [f"{build}/ruche", "data-bench", "--data", str(shards), "--workers", str(workers),
           "--batch-size", str(BATCH), "--warmup", str(warmup), "--batches", str(batches)]
    if not dct_scaling:
        cmd.append("--no-dct-scaling")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=common.ruche_env(1))
    m = RUCHE_LINE.search(proc.stdout)
    if proc.returncode != 0 or not m:
        raise SystemExit(f"input_pipeline: {shlex.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return {"images": int(m.group(1)), "wall_s": float(m.group(2)), "cpu_s": float(m.group(3))}


# ---------------------------------------------------------------- the GPU to feed

def gpu_rate() -> dict:
    """Our measured ResNet-50 training rate on a GPU (ruche, the fastest configuration in the
    newest gpu_throughput result), else the published A100 figure."""
    found = sorted(common.RESULTS.glob("gpu_throughput-*.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(found):
        record = json.loads(path.read_text())
        best = None
        for row in record.get("results", []):
            ruche = (row.get("best") or {}).get("ruche") or {}
            if row.get("model") == "resnet50" and "img_per_s" in ruche:
                rate = ruche["img_per_s"]["median"]
                if best is None or rate > best["img_per_s"]:
                    best = {"img_per_s": rate, "what": (
                        f"ResNet-50 training on one {record.get('card', 'GPU')}, ruche "
                        f"{row.get('precision')}, batch {row.get('batch')}: measured, "
                        f"benchmarks/results/{path.name}")}
        if best:
            return best
    return PUBLISHED_GPU


# ---------------------------------------------------------------- the benchmark

def rate(run) -> float:
    return run["images"] / run["wall_s"]


def per_cpu_s(run) -> float:
    return run["images"] / run["cpu_s"] if run["cpu_s"] > 0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=3, help="batches before the clock starts")
    ap.add_argument("--batches", type=int, default=24, help="batches timed per run")
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args()

    import torch
    import torchvision
    import PIL
    started, load_before = time.monotonic(), os.getloadavg()
    common.require_openblas(torch)  # every benchmark's guard; the pipeline itself uses no BLAS
    build = os.path.abspath(args.build)
    work = pathlib.Path(build) / "input_pipeline"
    root, shards = work / f"imagefolder-{args.images}", work / f"shards-{args.images}"
    made = make_imagefolder(root, args.images)
    convert_cmd = make_shards(build, root, shards)

    sides = [("torch", None), ("ruche", True), ("ruche", False)]
    runs = {(s, d, w): [] for s, d in sides for w in args.workers}
    for round_ in range(args.rounds + 1):  # round 0 warms the page cache and the processes
        for w in args.workers:
            for side, dct in sides:
                if side == "torch":
                    r = run_torch(root, w, args.warmup, args.batches)
                else:
                    r = run_ruche(build, shards, w, args.warmup, args.batches, dct)
                if round_ > 0:
                    runs[(side, dct, w)].append(r)
                print(f"round {round_} {side}{'' if dct is not False else ' (no dct)'} workers {w}:"
                      f" {rate(r):.1f} img/s, {per_cpu_s(r):.1f} img/cpu-s", flush=True)

    gpu = gpu_rate()
    rows = []
    for w in args.workers:
        row = {"workers": w}
        for (side, dct, ww), rs in runs.items():
            if ww != w:
                continue
            key = "torch" if side == "torch" else ("ruche" if dct else "ruche_no_dct")
            row[key] = {"img_per_s": common.summary([rate(r) for r in rs]),
                        "img_per_cpu_s": common.summary([per_cpu_s(r) for r in rs]),
                        "cores_used": common.summary([r["cpu_s"] / r["wall_s"] for r in rs])}
        for key in ("ruche", "ruche_no_dct"):
            row[f"{key}_vs_torch"] = {
                m: row[key][m]["median"] / row["torch"][m]["median"]
                for m in ("img_per_s", "img_per_cpu_s")}
        row["cores_for_gpu"] = {  # a core kept busy decodes img/cpu-s images a second
            key: gpu["img_per_s"] / row[key]["img_per_cpu_s"]["median"]
            for key in ("torch", "ruche", "ruche_no_dct")}
        rows.append(row)

    elapsed = time.monotonic() - started
    load = common.load_note(load_before)
    record = {
        "benchmark": "input_pipeline",
        "what": "training batches (JPEG decode, random-resized-crop 224, flip, normalise, float "
                "CHW, batch 32) per second: ruche's ShardLoader (ruche data-bench over ruche "
                "convert shards) vs PyTorch DataLoader + torchvision transforms (PIL decode) on "
                "the same JPEGs",
        "machine": common.machine(),
        "versions": dict(common.ruche_versions(build), torch=torch.__version__,
                         torchvision=torchvision.__version__, pillow=PIL.__version__),
        "command": shlex.join([sys.executable] + sys.argv),
        "environment": "OMP_NUM_THREADS=1, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset",
        "data": dict(made, convert=convert_cmd),
        "rounds": args.rounds, "warmup_batches": args.warmup, "timed_batches": args.batches,
        "batch": BATCH,
        "gpu_to_feed": gpu,
        "load": load,
        "elapsed_s": round(elapsed, 1),
        "results": rows,
    }
    m = record["machine"]
    lines = [
        "# Input pipeline: decoded and augmented images/s, ruche vs PyTorch (CPU)", "",
        f"Machine: {m.get('cpu', '?')}, {m['cores']} cores, {m['memory_gib']} GiB; torch "
        f"{torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}; "
        f"{record['versions']['ruche']} ({record['versions']['ruche_git']}). Data: "
        f"{args.images} synthetic JPEGs of {SIZE[0]}x{SIZE[1]} at quality {QUALITY} "
        f"(mean {made['mean_file_kb']} KB), {CLASSES} classes. Median (min-max) of "
        f"{args.rounds} alternating rounds after a warm-up round, one process per run, "
        f"{args.batches} batches of {BATCH} timed after {args.warmup}.", "",
        "Both sides: random-resized-crop 224 (scale 0.08-1, ratio 3/4-4/3), horizontal flip, "
        "normalise, float CHW batches. PyTorch: DataLoader(num_workers = workers, "
        "persistent_workers) over torchvision's ImageFolder (PIL decode). ruche: `ruche "
        "data-bench` (ShardLoader, workers decode threads) over `ruche convert` shards of the "
        "same files; `no dct` decodes every JPEG at full size as PIL does.", "",
        "| workers | PyTorch img/s | ruche img/s | ratio | ruche no dct img/s | ratio | "
        "PyTorch img/cpu-s | ruche img/cpu-s | ratio | ruche no dct img/cpu-s | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t, r, n = row["torch"], row["ruche"], row["ruche_no_dct"]
        lines.append(
            f"| {row['workers']} | {common.median_range(t['img_per_s'])} | "
            f"{common.median_range(r['img_per_s'])} | {row['ruche_vs_torch']['img_per_s']:.2f}x | "
            f"{common.median_range(n['img_per_s'])} | "
            f"{row['ruche_no_dct_vs_torch']['img_per_s']:.2f}x | "
            f"{common.median_range(t['img_per_cpu_s'])} | "
            f"{common.median_range(r['img_per_cpu_s'])} | "
            f"{row['ruche_vs_torch']['img_per_cpu_s']:.2f}x | "
            f"{common.median_range(n['img_per_cpu_s'])} | "
            f"{row['ruche_no_dct_vs_torch']['img_per_cpu_s']:.2f}x |")
    lines += [
        "", f"## Cores to feed one GPU: {gpu['img_per_s']:.0f} img/s", "",
        f"{gpu['what']}. Cores = that rate / img per CPU-second (what one core kept busy "
        "decodes), at each worker count.", "",
        "| workers | PyTorch cores | ruche cores | ruche no dct cores |", "|---|---|---|---|",
    ]
    for row in rows:
        c = row["cores_for_gpu"]
        lines.append(f"| {row['workers']} | {c['torch']:.1f} | {c['ruche']:.1f} | "
                     f"{c['ruche_no_dct']:.1f} |")
    notes = [
        load,
        "img/cpu-s: images over the CPU seconds of the side's process tree (every thread and "
        "DataLoader worker, main process included) in the timed window; less moved by other "
        "load than img/s, which with 2 workers on this shared 2-core machine competes with "
        "whatever else runs.",
        "ruche's DCT scaling (libjpeg-turbo decoding at 1/8, 1/4 or 1/2 size when the crop box "
        "is large enough for the result to keep 224 px; the other eighths decode slower than "
        "full size) is part of its design, and it decodes only the crop's rows and columns; the "
        "no-dct column decodes at full size as PIL does. On 500x375 images a box's short side is "
        "at most 375 px, so DCT scaling never applies (1/2 needs 448 px).",
        "PyTorch's side is stock Pillow (not Pillow-SIMD) with torchvision's tensor transforms, "
        "one torch thread per process, as Debian installs them.",
        "A training loop overlaps the loader with compute: these are the rates the loader "
        "alone sustains; a real job needs them on top of the cores its own threads use.",
    ]
    lines += common.footer_lines(notes, f"{sys.executable} benchmarks/input_pipeline.py "
                                 f"{args.build}", "OMP_NUM_THREADS=1; OPENBLAS_CORETYPE and "
                                 "OPENBLAS_L2_SIZE unset", elapsed)
    base = common.write_results("input_pipeline", record, "\n".join(lines),
                                args.results_dir)
    print("\n".join(lines))
    print(f"wrote {base}.json and {base}.md")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        root, workers, batch, warmup, batches = sys.argv[2:7]
        torch_worker(root, int(workers), int(batch), int(warmup), int(batches))
    else:
        main()
