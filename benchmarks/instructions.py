#!/usr/bin/env python3
"""Instructions of one training step per model, counted by callgrind: a regression counter that
the machine's load does not move, not a speed. Recorded with the instruction set oneDNN's kernels
used, since valgrind runs no AVX-512 code: oneDNN is capped at AVX2 (ONEDNN_MAX_CPU_ISA) for the
count, and the kernels it picks with and without the cap are listed (ONEDNN_VERBOSE).

One `ruche train` of 2 steps per model on 1 thread under callgrind, collecting inside
Trainer::train_step only and dumping after each call: the second step's dump is the count (the
first also builds oneDNN's primitives). The count includes the optimizer step; inclusive
malloc/free instructions of that step are given beside it (docs/ARCHITECTURE.md, Performance).
Batches are smaller than throughput.py's for the resnets: callgrind runs ~50x slower.

usage: instructions.py BUILD_DIR [--baseline-build DIR] [--models fashion_cnn resnet18 resnet50]
                       [--suffix b]
"""
import argparse
import collections
import glob
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import common

MODELS = {
    "fashion_cnn": {"shape": (1, 28, 28), "classes": 10, "batch": 64},
    "resnet18": {"shape": (3, 32, 32), "classes": 10, "batch": 8},
    "resnet50": {"shape": (3, 224, 224), "classes": 1000, "batch": 1},
}
ISA_CAP = "AVX2"
STEP_FUNCTION = "Trainer::train_step("
VERBOSE_LINE = re.compile(r"^(?:onednn|dnnl)_verbose,exec,cpu,([a-z_]+),([^,]+),")
ISA_LINE = re.compile(r"^(?:onednn|dnnl)_verbose,info,cpu,isa:(.*)$")
# glibc's public entry points; none calls another (each goes to _int_*), so their inclusive
# counts add up without counting a call twice. operator new/delete forward to malloc/free.
ALLOCATION_FUNCTIONS = ("malloc", "free", "calloc", "realloc", "memalign", "posix_memalign",
                        "aligned_alloc", "valloc")


def train_command(ruche, model, steps, out_dir, log_every=1):
    spec = MODELS[model]
    return [ruche, "train", "--model", model, "--data", "synthetic",
            "--synthetic-shape", ",".join(map(str, spec["shape"])),
            "--synthetic-classes", str(spec["classes"]), "--batch-size", str(spec["batch"]),
            "--max-steps", str(steps), "--log-every", str(log_every), "--optimizer", "sgd",
            "--lr-policy", "fixed", "--warmup-epochs", "0", "--val-fraction", "0",
            "--no-augment", "--no-checkpoint", "--threads", "1", "--out", out_dir]


def env_with(cap=None, verbose=False):
    env = common.ruche_env(1)
    if cap:
        env["ONEDNN_MAX_CPU_ISA"] = env["DNNL_MAX_CPU_ISA"] = cap
    if verbose:
        env["ONEDNN_VERBOSE"] = env["DNNL_VERBOSE"] = "1"
    return env


def kernels_used(ruche, model, cap):
    """oneDNN's instruction set and its implementation per primitive kind in one training step:
    {"isa": text, "kernels": {kind: {impl: count}}}."""
    with tempfile.TemporaryDirectory(prefix="ruche-isa-") as out_dir:
        proc = subprocess.run(train_command(ruche, model, 1, out_dir), capture_output=True,
                              text=True, env=env_with(cap, verbose=True))
    if proc.returncode != 0:
        raise SystemExit(f"instructions: ruche train failed:\n{proc.stderr[-2000:]}")
    kinds, isa = collections.defaultdict(collections.Counter), "?"
    for line in proc.stdout.splitlines():
        m = VERBOSE_LINE.match(line)
        if m:
            kinds[m.group(1)][m.group(2)] += 1
        m = ISA_LINE.match(line)
        if m:
            isa = m.group(1)
    return {"isa": isa, "kernels": {k: dict(v) for k, v in sorted(kinds.items())}}


def dump_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"instructions: {path} has no totals line")


def allocation_instructions(path):
    """Inclusive instructions of glibc's allocation functions in one callgrind dump."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        m = re.match(r"^\s*([0-9,]+) \([^)]*\)\s+(\S.*)$", line)
        if not m:
            continue
        where = m.group(2)
        function = where.split(":", 1)[1] if ":" in where else where
        name = function.split(" [")[0].split("(")[0].strip()
        if name in ALLOCATION_FUNCTIONS and "libc.so" in where:
            total += int(m.group(1).replace(",", ""))
    return total


def step_function(ruche):
    """The training step's full name in the binary: callgrind's --dump-after takes no pattern."""
    out = subprocess.run(["nm", "-C", "--defined-only", ruche], capture_output=True, text=True,
                         check=True).stdout
    names = {line.split(" ", 2)[2] for line in out.splitlines()
             if " T " in line and STEP_FUNCTION in line}
    if len(names) != 1:
        raise SystemExit(f"instructions: {ruche} defines {len(names)} functions named "
                         f"*{STEP_FUNCTION}*: {sorted(names)}")
    return names.pop()


def count_step(ruche, model, keep=None):
    """(instructions of the second training step, of its allocation calls, the command)."""
    step = step_function(ruche)
    with tempfile.TemporaryDirectory(prefix="ruche-callgrind-") as tmp:
        out = f"{tmp}/callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--toggle-collect={step}",
               f"--dump-after={step}", f"--callgrind-out-file={out}"]
        cmd += train_command(ruche, model, 2, f"{tmp}/run")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env_with(ISA_CAP))
        if proc.returncode != 0:
            raise SystemExit(f"instructions: {shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        dumps = sorted(glob.glob(f"{out}.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        if len(dumps) < 2:
            raise SystemExit(f"instructions: callgrind wrote {dumps}, not one dump per step: "
                             f"is {step} still the step?")
        if keep:
            shutil.copy(dumps[1], keep)
        return dump_total(dumps[1]), allocation_instructions(dumps[1]), shlex.join(cmd)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", help="a directory holding ruche")
    parser.add_argument("--baseline-build", help="a directory holding an older ruche")
    parser.add_argument("--baseline-result",
                        help="an earlier result of this script whose rows are the baseline (a "
                             "count does not depend on the load, so it need not be this run's)")
    parser.add_argument("--revision", help="the git revision BUILD_DIR's ruche was built from "
                                           "(default: this checkout's HEAD)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--suffix", default="", help="appended to the result's date")
    parser.add_argument("--keep-dumps", help="a directory to keep each step's callgrind dump in "
                                             "(for callgrind_annotate)")
    parser.add_argument("--dumps-from", help="count from the dumps an earlier run kept with "
                                             "--keep-dumps instead of running callgrind again")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    builds = {"ruche": str(pathlib.Path(args.build).resolve())}
    if args.baseline_build:
        builds["ruche_baseline"] = str(pathlib.Path(args.baseline_build).resolve())
    versions = common.ruche_versions(args.build)
    if args.revision:
        versions["ruche_git"] = args.revision
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True,
                              text=True).stdout.strip()
    started = time.time()
    rows = []
    for model in args.models:
        for name, build in builds.items():
            ruche = f"{build}/ruche"
            t0 = time.time()
            keep = (f"{args.keep_dumps}/callgrind-{model}-{name}.out" if args.keep_dumps
                    else None)
            if args.dumps_from:
                dump = f"{args.dumps_from}/callgrind-{model}-{name}.out"
                step, alloc = dump_total(dump), allocation_instructions(dump)
                cmd = f"(counted from {dump}, kept by an earlier run)"
            else:
                step, alloc, cmd = count_step(ruche, model, keep)
            row = {"model": model, "build": name, "batch": MODELS[model]["batch"],
                   "instructions_per_step": step, "allocation_instructions_per_step": alloc,
                   "isa_cap": ISA_CAP, "kernels_capped": kernels_used(ruche, model, ISA_CAP),
                   "kernels_native": kernels_used(ruche, model, None), "command": cmd,
                   "callgrind_s": round(time.time() - t0, 1)}
            rows.append(row)
            print(f"{model} {name}: {step / 1e9:.3f} G instructions per step, "
                  f"{alloc / 1e6:.2f} M in malloc/free [{time.time() - started:.0f} s]",
                  flush=True)
    if args.baseline_result and not os.path.exists(args.baseline_result):
        print(f"instructions: no {args.baseline_result}; the result has no baseline rows")
        args.note.append(f"{args.baseline_result} was missing: no baseline rows")
    elif args.baseline_result:
        with open(args.baseline_result) as f:
            earlier = json.load(f)
        for r in earlier["results"]:
            if r["build"] == "ruche" and r["model"] in args.models:
                rows.append({**r, "build": "ruche_baseline",
                             "revision": earlier["versions"]["ruche_git"],
                             "from": args.baseline_result})
    record = {"benchmark": "instructions",
              "what": "callgrind instruction count of the second training step (1 thread, "
                      f"oneDNN capped at {ISA_CAP}), with the kernels oneDNN picked",
              "machine": common.machine(), "versions": {**versions, "valgrind": valgrind},
              "command": " ".join([sys.executable] + sys.argv),
              "env": f"OMP_NUM_THREADS=1, ONEDNN_MAX_CPU_ISA={ISA_CAP} for the count",
              "models": MODELS, "notes": args.note, "results": rows,
              "elapsed_s": round(time.time() - started, 1)}
    lines = ["# Instructions per training step (callgrind)", "",
             f"{record['what']}; {valgrind}; ruche {record['versions']['ruche_git']}. Repeatable "
             "whatever the machine's load: compare builds with it, not speeds.", "",
             "| model | batch | build | G instructions / step | vs baseline | malloc/free "
             "M instructions | kernels at the cap | kernels native |", "|---|---|---|---|---|---|---|---|"]
    base = {r["model"]: r["instructions_per_step"] for r in rows if r["build"] == "ruche_baseline"}
    for r in rows:
        vs = (f"{r['instructions_per_step'] / base[r['model']]:.3f}x"
              if r["model"] in base else "-")
        build = f"{r['build']} ({r['revision']})" if "revision" in r else r["build"]
        lines.append(f"| {r['model']} | {r['batch']} | {build} | "
                     f"{r['instructions_per_step'] / 1e9:.3f} | {vs} | "
                     f"{r['allocation_instructions_per_step'] / 1e6:.2f} | "
                     f"{isa_summary(r['kernels_capped'])} | {isa_summary(r['kernels_native'])} |")
    lines += common.footer_lines(record["notes"], record["command"], record["env"],
                                 record["elapsed_s"])
    path = common.write_results("instructions", record, "\n".join(lines), suffix=args.suffix)
    print(f"wrote {path}.json and .md")


def isa_summary(used):
    """oneDNN's ISA and the implementations it ran, e.g. 'Intel AVX2: jit:avx2 x12, ...'."""
    impls = collections.Counter()
    for per_kind in used["kernels"].values():
        impls.update(per_kind)
    return f"{used['isa']}: " + (", ".join(f"{k} x{n}" for k, n in impls.most_common())
                                 or "none seen")


if __name__ == "__main__":
    main()
