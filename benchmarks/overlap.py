#!/usr/bin/env python3
"""Overlap of gradient all-reduce with backward (docs/ARCHITECTURE.md, Benchmarks):
the share of all-reduce time hidden behind backward compute, from `ruche train --timeline`,
2 ranks x 1 thread. Goal: >= 80%.

Per rank and per step (after the warm-up steps), from RUN/timeline.json:
  total   = sum of the step's "allreduce" bucket durations (comm thread, tid 1)
  exposed = the part of the union of the step's all-reduce intervals that lies after the end of
            the step's last "backward" event (compute thread, tid 0): communication that no
            backward compute hides
  hidden  = 1 - sum(exposed) / sum(total) over the steps, per rank and over both ranks.
A step is the compute between two "wait for gradients" events: step k holds the events that
start after the end of step k-1's wait and no later than the end of its own wait.

Diagnostics in the result: mean step time (optimizer end to optimizer end), forward, backward,
all-reduce and wait time per step, per bucket durations, and "exposed after both ranks'
backward": the exposed part that remains when the end of backward is taken as the later of the
two ranks' (the traces' origins are aligned by a barrier), i.e. without the time a bucket spends
waiting for the slower rank to reach it.

  fashion_cnn  Fashion-MNIST (the default data), batch 64 per rank
  resnet18     synthetic 3x32x32 (CIFAR stem), batch 16 per rank

usage: overlap.py BUILD_DIR [--rounds 3] [--models fashion_cnn resnet18] [--note TEXT]
       overlap.py --analyze RUN/timeline.json [--warmup N]   (one trace, printed)
       overlap.py --self-test                                (the analysis on a synthetic trace)
"""
import argparse
import json
import os
import pathlib
import shlex
import sys
import tempfile
import time

import common

# Steps per run: warm-up steps (not counted) then measured steps. Sized so that 3 rounds of both
# models stay within ~8 minutes on a busy 2-core machine.
MODELS = {
    "fashion_cnn": {"data": None, "batch": 64, "warmup": 5, "steps": 30},
    "resnet18": {"data": "synthetic", "shape": (3, 32, 32), "batch": 16, "warmup": 2, "steps": 8},
}
RANKS, THREADS = 2, 1


# ---------------------------------------------------------------- the analysis of one trace

def union(intervals):
    """Sorted, merged (start, end) intervals."""
    merged = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return merged


def length_after(intervals, t):
    """Length of the union of intervals that lies after t."""
    return sum(max(0.0, e - max(s, t)) for s, e in union(intervals))


def split_steps(events):
    """One rank's events -> a list of steps, each a dict of its events by category."""
    waits = sorted((e for e in events if e.get("cat") == "comm_wait"), key=lambda e: e["ts"])
    bounds = [w["ts"] + w["dur"] for w in waits]
    steps = [{"wait": w, "forward": [], "backward": [], "allreduce": [], "optimizer": []}
             for w in waits]
    for e in events:
        cat = e.get("cat")
        if cat not in ("forward", "backward", "allreduce", "optimizer") or e.get("ph") != "X":
            continue
        # the first step whose wait ends at or after the event's start (the optimizer runs
        # after the wait: it belongs to the step whose wait precedes it)
        ts = e["ts"]
        k = next((i for i, b in enumerate(bounds) if ts <= b), None)
        if cat == "optimizer":
            k = max((i for i, b in enumerate(bounds) if b <= ts + 1), default=None)
        if k is not None:
            steps[k][cat].append(e)
    return steps


def analyze(trace, warmup):
    """trace: the parsed timeline.json (a dict with traceEvents, or a list). Returns the
    per-rank and overall figures over the steps after the first `warmup`."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    ranks = sorted({e["pid"] for e in events if e.get("ph") == "X"})
    per_rank_steps = {r: split_steps([e for e in events if e.get("pid") == r]) for r in ranks}
    n_steps = min(len(s) for s in per_rank_steps.values())
    if n_steps <= warmup:
        raise SystemExit(f"overlap: {n_steps} steps in the trace, {warmup} of them warm-up")
    # end of backward per step per rank, for the "both ranks" diagnostic
    bwd_end = {r: [max((e["ts"] + e["dur"] for e in st["backward"]), default=None)
                   for st in per_rank_steps[r][:n_steps]] for r in ranks}
    out = {"ranks": {}, "steps_measured": n_steps - warmup, "warmup_steps": warmup}
    for r in ranks:
        steps = per_rank_steps[r][:n_steps]
        acc = {"total_us": 0.0, "exposed_us": 0.0, "exposed_after_all_bwd_us": 0.0,
               "step_us": [], "forward_us": [], "backward_us": [], "backward_span_us": [],
               "allreduce_us": [], "wait_us": [], "optimizer_us": [], "buckets": {},
               "last_bucket_start_after_bwd_us": []}
        for k in range(warmup, n_steps):
            st = steps[k]
            if not st["backward"] or not st["allreduce"]:
                raise SystemExit(f"overlap: rank {r} step {k} has no backward or no allreduce "
                                 "events (is --timeline recording the comm thread?)")
            end_bwd = bwd_end[r][k]
            end_bwd_all = max(bwd_end[q][k] for q in ranks)
            iv = [(e["ts"], e["ts"] + e["dur"]) for e in st["allreduce"]]
            total = sum(e["dur"] for e in st["allreduce"])
            acc["total_us"] += total
            acc["exposed_us"] += length_after(iv, end_bwd)
            acc["exposed_after_all_bwd_us"] += length_after(iv, end_bwd_all)
            acc["allreduce_us"].append(total)
            acc["forward_us"].append(sum(e["dur"] for e in st["forward"]))
            acc["backward_us"].append(sum(e["dur"] for e in st["backward"]))
            acc["backward_span_us"].append(end_bwd - min(e["ts"] for e in st["backward"]))
            acc["wait_us"].append(st["wait"]["dur"])
            acc["optimizer_us"].append(sum(e["dur"] for e in st["optimizer"]))
            acc["last_bucket_start_after_bwd_us"].append(max(s for s, _ in iv) - end_bwd)
            for e in st["allreduce"]:
                acc["buckets"].setdefault(e["name"], []).append(e["dur"])
            prev_opt = steps[k - 1]["optimizer"] if k > 0 else []
            if prev_opt and st["optimizer"]:
                acc["step_us"].append(max(e["ts"] + e["dur"] for e in st["optimizer"])
                                      - max(e["ts"] + e["dur"] for e in prev_opt))
        out["ranks"][str(r)] = summarize(acc)
    tot = sum(v["total_us"] for v in out["ranks"].values())
    exp = sum(v["exposed_us"] for v in out["ranks"].values())
    exp_all = sum(v["exposed_after_all_bwd_us"] for v in out["ranks"].values())
    skews = [max(bwd_end[q][k] for q in ranks) - min(bwd_end[q][k] for q in ranks)
             for k in range(warmup, n_steps)]
    out["backward_end_skew_ms"] = mean(skews) / 1e3
    out["hidden_share"] = 1.0 - exp / tot if tot > 0 else None
    out["hidden_share_after_all_bwd"] = 1.0 - exp_all / tot if tot > 0 else None
    return out


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def summarize(acc):
    t, x = acc["total_us"], acc["exposed_us"]
    return {
        "total_us": t, "exposed_us": x, "exposed_after_all_bwd_us": acc["exposed_after_all_bwd_us"],
        "hidden_share": 1.0 - x / t if t > 0 else None,
        "hidden_share_after_all_bwd": 1.0 - acc["exposed_after_all_bwd_us"] / t if t > 0 else None,
        "mean_ms": {name: (mean(acc[key]) / 1e3 if acc[key] else None) for name, key in (
            ("step", "step_us"), ("forward", "forward_us"), ("backward", "backward_us"),
            ("backward_span", "backward_span_us"), ("allreduce", "allreduce_us"),
            ("exposed", None), ("wait", "wait_us"), ("optimizer", "optimizer_us"),
            ("last_bucket_start_after_backward", "last_bucket_start_after_bwd_us"))
            if key is not None},
        "exposed_ms_per_step": x / 1e3 / len(acc["wait_us"]),
        "bucket_mean_ms": {n: mean(d) / 1e3 for n, d in sorted(acc["buckets"].items())},
    }


def self_test():
    """Two ranks, three steps; step 0 is warm-up. Rank 0: backward [100, 200), buckets
    [150, 180) and [190, 230): 70 us of all-reduce, 30 exposed. Rank 1: backward ends at 220,
    buckets [160, 190), [225, 235): 40 us, 10 exposed. Step 2 the same, shifted by 1000."""
    ev = []

    def x(pid, tid, cat, name, ts, dur):
        ev.append({"name": name, "cat": cat, "ph": "X", "ts": ts, "dur": dur, "pid": pid,
                   "tid": tid})
    for pid, bwd_end, buckets in ((0, 200, [(150, 30), (190, 40)]),
                                  (1, 220, [(160, 30), (225, 10)])):
        x(pid, 0, "comm_wait", "wait for gradients", -500, 10)    # step 0 (warm-up)
        x(pid, 0, "backward", "backward fc", -700, 100)
        x(pid, 1, "allreduce", "bucket 1", -650, 400)              # fully hidden? ignored anyway
        x(pid, 0, "optimizer", "optimizer", -480, 20)
        for off in (0, 1000):
            x(pid, 0, "forward", "forward conv1", off + 10, 80)
            x(pid, 0, "backward", "backward fc", off + 100, 50)
            x(pid, 0, "backward", "backward conv1", off + 150, bwd_end - 150)
            for i, (s, d) in enumerate(buckets):
                x(pid, 1, "allreduce", f"bucket {i + 1}", off + s, d)
            x(pid, 0, "comm_wait", "wait for gradients", off + 240, 5)
            x(pid, 0, "optimizer", "optimizer", off + 250, 20)
        x(pid, 0, "forward", "forward conv1", 5000, 80)          # the test pass: no step
    r = analyze({"traceEvents": ev}, warmup=1)
    r0, r1 = r["ranks"]["0"], r["ranks"]["1"]
    assert r["steps_measured"] == 2, r
    assert abs(r0["total_us"] - 140) < 1e-9 and abs(r0["exposed_us"] - 60) < 1e-9, r0
    assert abs(r1["total_us"] - 80) < 1e-9 and abs(r1["exposed_us"] - 20) < 1e-9, r1
    assert abs(r["hidden_share"] - (1 - 80 / 220)) < 1e-12, r
    # after both ranks' backward (220): rank 0 exposes [220, 230) = 10 per step
    assert abs(r0["exposed_after_all_bwd_us"] - 20) < 1e-9, r0
    assert abs(r0["mean_ms"]["step"] - (730 + 1000) / 2e3) < 1e-12, r0  # step 0 ends at -460
    assert abs(r0["mean_ms"]["wait"] - 0.005) < 1e-12, r0
    assert abs(r["backward_end_skew_ms"] - 0.02) < 1e-12, r
    # overlapping buckets count once in the union
    assert length_after([(0, 10), (5, 20), (30, 40)], 8) == 22
    print("overlap self-test: ok")


# ---------------------------------------------------------------- the driver

def train_command(build, model, out_dir):
    spec = MODELS[model]
    return common.ruche_train_command(
        build, RANKS, model, spec,
        ["--batch-size", spec["batch"], "--max-steps", spec["warmup"] + spec["steps"],
         "--log-every", spec["warmup"], "--val-fraction", "0", "--threads", THREADS,
         "--timeline", "--out", out_dir])


def one_run(build, model):
    spec = MODELS[model]
    with tempfile.TemporaryDirectory(prefix="ruche-overlap-") as out_dir:
        cmd = train_command(build, model, out_dir)
        proc = common.run_with_cpu_share(cmd, common.ruche_env(THREADS))
        if proc["returncode"] != 0:
            raise SystemExit(f"overlap: {shlex.join(cmd)} failed ({proc['returncode']}):\n"
                             f"{proc['stdout'][-2000:]}\n{proc['stderr'][-2000:]}")
        with open(f"{out_dir}/timeline.json") as f:
            trace = json.load(f)
        result = analyze(trace, spec["warmup"])
        result["img_per_s"] = common.steady_img_per_s(f"{out_dir}/metrics.jsonl",
                                                      spec["batch"] * RANKS)
        result["job_cores"], result["other_cores"] = proc["job_cores"], proc["other_cores"]
    return result


fmt_range = common.median_range  # "median (min-max)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", nargs="?")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the result's notes (e.g. the machine was busy)")
    parser.add_argument("--analyze", help="print the analysis of one timeline.json")
    parser.add_argument("--warmup", type=int, default=3, help="with --analyze")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    if args.analyze:
        with open(args.analyze) as f:
            print(json.dumps(analyze(json.load(f), args.warmup), indent=2))
        return
    if not args.build:
        parser.error("BUILD_DIR is required")
    self_test()
    build = str(pathlib.Path(args.build).resolve())
    versions = common.ruche_versions(build)
    started = time.time()
    loadavg_before = os.getloadavg()
    rows = []
    runs = {m: [] for m in args.models}
    # Rounds alternate the models (A B A B ...) so that the machine's noise hits both alike.
    for rnd in range(args.rounds):
        for model in args.models:
            r = one_run(build, model)
            runs[model].append(r)
            print(f"  {model} round {rnd}: hidden {100 * r['hidden_share']:.1f}% (rank 0 "
                  f"{100 * r['ranks']['0']['hidden_share']:.1f}%, rank 1 "
                  f"{100 * r['ranks']['1']['hidden_share']:.1f}%), {r['img_per_s']:.1f} img/s, "
                  f"skew {r['backward_end_skew_ms']:.1f} ms, cores: job {r['job_cores']:.2f}, "
                  f"rest of the machine {r['other_cores']:.2f} "
                  f"[{time.time() - started:.0f} s]", flush=True)
    for model in args.models:
        rs = runs[model]
        row = {"model": model, "batch_per_rank": MODELS[model]["batch"],
               "input": "fashion-mnist 1x28x28" if MODELS[model]["data"] is None
               else "synthetic " + "x".join(map(str, MODELS[model]["shape"])),
               "hidden_share": common.summary([r["hidden_share"] for r in rs]),
               "hidden_share_after_all_bwd": common.summary(
                   [r["hidden_share_after_all_bwd"] for r in rs]),
               "img_per_s": common.summary([r["img_per_s"] for r in rs]),
               "backward_end_skew_ms": common.summary([r["backward_end_skew_ms"] for r in rs]),
               "cores_used": {k: common.summary([r[f"{k}_cores"] for r in rs])
                              for k in ("job", "other")},
               "ranks": {}}
        for rank in ("0", "1"):
            per = [r["ranks"][rank] for r in rs]
            row["ranks"][rank] = {
                "hidden_share": common.summary([p["hidden_share"] for p in per]),
                "mean_ms": {k: common.summary([p["mean_ms"][k] for p in per])
                            for k in per[0]["mean_ms"] if per[0]["mean_ms"][k] is not None},
                "exposed_ms_per_step": common.summary([p["exposed_ms_per_step"] for p in per]),
                "bucket_mean_ms": {b: common.summary([p["bucket_mean_ms"][b] for p in per])
                                   for b in per[0]["bucket_mean_ms"]},
            }
        row["runs"] = rs
        rows.append(row)
        print(f"{model}: hidden share {fmt_range(row['hidden_share'], 100)}% "
              f"(goal >= 80%)", flush=True)
    elapsed = time.time() - started
    notes = list(args.note)
    notes.append(common.load_note(loadavg_before))
    record = {
        "benchmark": "overlap",
        "what": "share of gradient all-reduce time hidden behind backward, from the timeline, "
                f"{RANKS} ranks x {THREADS} thread (mpirun, one machine, shared memory), CPU",
        "goal": "hidden share >= 80%",
        "definition": "per rank per step: total = sum of the allreduce bucket durations; exposed "
                      "= length of the union of those intervals after the step's last backward "
                      "event ends; hidden = 1 - sum(exposed)/sum(total) over the measured steps "
                      "(and both ranks for the overall figure)",
        "machine": common.machine(),
        "versions": versions,
        "command": " ".join([sys.executable] + sys.argv),
        "env": f"OMP_NUM_THREADS={THREADS}; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset",
        "per_round_commands": {m: f"OMP_NUM_THREADS={THREADS} "
                                  + shlex.join(train_command(build, m, "TMPDIR"))
                               for m in args.models},
        "models": MODELS,
        "rounds": args.rounds,
        "elapsed_s": round(elapsed, 1),
        "notes": notes,
        "results": rows,
    }
    path = common.write_results("overlap", record, markdown(record))
    print(f"wrote {path}.json and .md")


def markdown(record):
    m = record["machine"]
    v = record["versions"]
    lines = ["# Overlap: all-reduce hidden behind backward (2 ranks x 1 thread, CPU)", "",
             f"Machine: {m.get('cpu', '?')}, {m['cores']} cores, {m['memory_gib']} GiB, GPU "
             f"{m['gpu']}; {v['ruche']} (git {v['ruche_git']}). Open MPI, {RANKS} ranks on "
             "this one machine (shared memory, no network), OMP_NUM_THREADS=1 per rank. "
             f"Median (min-max) over {record['rounds']} runs (models alternating), each run "
             "aggregated over its measured steps after the warm-up steps. Goal: hidden >= 80%.",
             "", f"Definition: {record['definition']}.", "",
             "| model | input | batch/rank | hidden (both ranks) | rank 0 | rank 1 | hidden if "
             "the slower rank's backward end counts | backward end skew between ranks, ms/step "
             "| img/s (global) | cores used by the job / by the rest of the machine |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["results"]:
        lines.append(
            f"| {r['model']} | {r['input']} | {r['batch_per_rank']} | "
            f"{fmt_range(r['hidden_share'], 100)}% | "
            f"{fmt_range(r['ranks']['0']['hidden_share'], 100)}% | "
            f"{fmt_range(r['ranks']['1']['hidden_share'], 100)}% | "
            f"{fmt_range(r['hidden_share_after_all_bwd'], 100)}% | "
            f"{fmt_range(r['backward_end_skew_ms'])} | {fmt_range(r['img_per_s'])} | "
            f"{fmt_range(r['cores_used']['job'], 1, 2)} / "
            f"{fmt_range(r['cores_used']['other'], 1, 2)} |")
    lines += ["", "Cores used: CPU seconds over wall seconds of each whole run (start-up and the "
              "final test pass included), the job's from getrusage (mpirun and its ranks), the "
              "rest of the machine's from /proc/stat minus the job's.", ""]
    lines += ["", "Mean per step, ms (median (min-max) over the runs):", "",
              "| model | rank | step | forward | backward | all-reduce (sum of buckets) | "
              "exposed | wait for gradients | optimizer | last bucket starts after backward |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["results"]:
        for rank in ("0", "1"):
            mm = r["ranks"][rank]["mean_ms"]
            cell = {k: (fmt_range(mm[k], 1, 2) if k in mm else "-") for k in (
                "step", "forward", "backward", "allreduce", "wait", "optimizer",
                "last_bucket_start_after_backward")}
            lines.append(f"| {r['model']} | {rank} | {cell['step']} | {cell['forward']} | "
                         f"{cell['backward']} | {cell['allreduce']} | "
                         f"{fmt_range(r['ranks'][rank]['exposed_ms_per_step'], 1, 2)} | "
                         f"{cell['wait']} | {cell['optimizer']} | "
                         f"{cell['last_bucket_start_after_backward']} |")
    lines += ["", "Mean duration of each bucket's all-reduce, ms (rank 0; median over runs):", ""]
    for r in record["results"]:
        for b, s in r["ranks"]["0"]["bucket_mean_ms"].items():
            lines.append(f"- {r['model']}: {b}: {s['median']:.2f}")
    lines += ["", "Commands (one run each):", ""]
    for model, cmd in record["per_round_commands"].items():
        lines.append(f"- {model}: `{cmd}`")
    lines += common.footer_lines(record["notes"], record["command"], record["env"],
                                 record["elapsed_s"])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
