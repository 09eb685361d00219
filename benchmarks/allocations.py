#!/usr/bin/env python3
"""What the heap allocations of a steady CPU training step cost: heaptrack counts them (a run of
N steps against one of 2N, so start-up and the first step's primitive creation cancel), and the
instructions glibc's allocator spends on them come from an instructions.py result (callgrind,
the second step). Answers issue 24's question: does moving off oneDNN 2.6, which allocates inside
every primitive execution, pay?

usage: allocations.py BUILD_DIR --instructions RESULT.json [--model fashion_cnn] [--steps 4]
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import time

import common
import instructions

LARGE = 128 * 1024  # glibc's default mmap threshold: larger blocks are mapped and unmapped


def heaptrack_run(ruche, model, steps, tmp, cap=None):
    """(allocation calls, temporary allocations, {size: count}) of one run of `steps` steps."""
    out = f"{tmp}/heaptrack-{steps}-{cap or 'native'}"
    # No progress line or metrics record within the run: the count is the step's alone.
    cmd = ["heaptrack", "-o", out] + instructions.train_command(
        ruche, model, steps, f"{out}.run", log_every=10 * steps)
    subprocess.run(cmd, capture_output=True, text=True, check=True,
                   env=instructions.env_with(cap))
    report = subprocess.run(["heaptrack_print", "-f", f"{out}.zst", "-H", f"{out}.hist"],
                            capture_output=True, text=True, check=True).stdout
    calls = int(re.search(r"^calls to allocation functions: (\d+)", report, re.M).group(1))
    temporary = int(re.search(r"^temporary memory allocations: (\d+)", report, re.M).group(1))
    sizes = {}
    with open(f"{out}.hist") as f:
        for line in f:
            size, count = line.split()[:2]
            sizes[int(size)] = sizes.get(int(size), 0) + int(count)
    return calls, temporary, sizes


def step_ms(ruche, model, steps):
    """Mean ms of the steps after the first of a plain run (no heaptrack), one thread."""
    with tempfile.TemporaryDirectory(prefix="ruche-alloc-") as out_dir:
        subprocess.run(instructions.train_command(ruche, model, steps + 1, out_dir),
                       capture_output=True, check=True, env=instructions.env_with())
        rate = common.steady_img_per_s(f"{out_dir}/metrics.jsonl",
                                       instructions.MODELS[model]["batch"])
    return 1e3 * instructions.MODELS[model]["batch"] / rate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", help="a directory holding ruche")
    parser.add_argument("--instructions", required=True,
                        help="an instructions.py result of the same build")
    parser.add_argument("--model", default="fashion_cnn", choices=list(instructions.MODELS))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--revision", help="the git revision of BUILD_DIR's ruche")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    ruche = f"{args.build}/ruche"
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ruche-heaptrack-") as tmp:
        short = heaptrack_run(ruche, args.model, args.steps, tmp)
        long = heaptrack_run(ruche, args.model, 2 * args.steps, tmp)
        # At the ISA the instruction count was taken at: oneDNN's code paths differ by ISA.
        capped = [heaptrack_run(ruche, args.model, k * args.steps, tmp, instructions.ISA_CAP)
                  for k in (1, 2)]
    n = args.steps
    per_step = {s: (long[2].get(s, 0) - short[2].get(s, 0)) / n
                for s in set(short[2]) | set(long[2])}
    per_step = {s: c for s, c in sorted(per_step.items()) if c}
    with open(args.instructions) as f:
        counted = json.load(f)
    row = next(r for r in counted["results"]
               if r["model"] == args.model and r["build"] == "ruche")
    ms = step_ms(ruche, args.model, 2 * args.steps)
    calls = (long[0] - short[0]) / n
    record = {
        "benchmark": "allocations",
        "what": f"heap allocations of one steady training step ({args.model}, batch "
                f"{instructions.MODELS[args.model]['batch']}, 1 thread) and the instructions "
                "glibc's allocator spends on them",
        "machine": common.machine(),
        "versions": {**common.ruche_versions(args.build),
                     **({"ruche_git": args.revision} if args.revision else {})},
        "command": " ".join([sys.executable] + sys.argv),
        "allocations_per_step": calls,
        "allocations_per_step_at_cap": (capped[1][0] - capped[0][0]) / n,
        "temporary_allocations_per_step": (long[1] - short[1]) / n,
        "bytes_per_step": sum(s * c for s, c in per_step.items()),
        "largest_size": max(per_step) if per_step else 0,
        "allocations_at_least_mmap_threshold": sum(c for s, c in per_step.items() if s >= LARGE),
        "sizes_per_step": per_step,
        "instructions_per_step": row["instructions_per_step"],
        "allocation_instructions_per_step": row["allocation_instructions_per_step"],
        "instructions_result": args.instructions,
        "step_ms_1_thread": ms,
        "notes": args.note,
        "elapsed_s": round(time.time() - started, 1),
    }
    share = row["allocation_instructions_per_step"] / row["instructions_per_step"]
    top = sorted(per_step.items(), key=lambda kv: -kv[1])[:6]
    lines = [f"# Heap allocations in a training step ({args.model})", "",
             record["what"] + f"; ruche {record['versions']['ruche_git']}.", "",
             "| what | per step |", "|---|---|",
             f"| allocation calls (heaptrack, {2 * n} steps minus {n}, native ISA) | "
             f"{calls:.0f} |",
             f"| allocation calls, oneDNN capped at {instructions.ISA_CAP} | "
             f"{record['allocations_per_step_at_cap']:.0f} |",
             f"| of them freed at once (temporary) | {record['temporary_allocations_per_step']:.0f} |",
             f"| bytes allocated | {record['bytes_per_step']:.0f} |",
             f"| largest block | {record['largest_size']} bytes |",
             f"| blocks >= {LARGE // 1024} KiB (mmap'd, page faults) | "
             f"{record['allocations_at_least_mmap_threshold']:.0f} |",
             "| instructions in malloc/free/memalign (callgrind, second step, oneDNN capped "
             f"at {instructions.ISA_CAP}) | {row['allocation_instructions_per_step']:,} |",
             f"| instructions of the step | {row['instructions_per_step']:,} |",
             f"| allocator's share of the step's instructions | {share:.3%} |",
             f"| step time, 1 thread, no profiler | {ms:.1f} ms |", "",
             "Most frequent sizes per step: " + ", ".join(f"{c:.0f} x {s} B" for s, c in top)
             + "."]
    lines += common.footer_lines(args.note, record["command"], "OMP_NUM_THREADS=1",
                                 record["elapsed_s"])
    path = common.write_results("allocations", record, "\n".join(lines))
    print(f"wrote {path}.json and .md")


if __name__ == "__main__":
    main()
