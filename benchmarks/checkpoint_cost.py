#!/usr/bin/env python3
"""Cost of checkpointing (issue "Sharded checkpoints, exact resume, and surviving failures",
Benchmark; docs/ARCHITECTURE.md, Benchmarks; Checkpoints). Two parts:

1. Step time while an asynchronous save runs against without, same run. `ruche train --log-every 1
   --checkpoint-every-steps K` writes one train record per step to RUN/metrics.jsonl with
   "saving": 1 while a save (snapshot copied at a step boundary, then a writer thread writing the
   shard while training goes on, committed at a later step boundary) is in flight. A step's time
   is the difference of consecutive time_s. Record t is written before step t's checkpoint work
   (Checkpointer::after_step), so step t's time holds step t-1's boundary work. The steps after
   the warm-up are classed by their record's flag and the previous one's:
     snapshot   saving 1 after 0: the boundary before it copied the state (training thread);
                the writer thread starts writing the shard during this step
     saving     saving 1 after 1: the shard write still in flight on the writer thread
                The goal: the median of every step with saving 1 (snapshot and saving)
                <= 1.05 x median(clean)
     commit     saving 0 after 1: the boundary before it collected the shard, gathered the records
                and (rank 0) wrote manifest, COMMIT and latest and pruned old checkpoints
     clean      saving 0 after 0: no save anywhere near
   A save's total cost to training is the excess over the clean median of its snapshot, saving
   and commit steps; amortized over K steps it is the slowdown of checkpointing every K steps.
   Configurations: resnet18 (11.7M params, ~94 MB of state with SGD momentum) on 2 ranks (each
   writes half) and on 1 rank, and fashion_cnn on Fashion-MNIST (small state), 1 thread per rank;
   rounds alternate the configurations (A B C A B C ...).

2. Save and load throughput against the disk's own: build/checkpoint_bench (resnet18's whole
   state as one shard): write_shard (crc32c, write, fsync, rename) against a plain write()+fsync
   of the same bytes in the same directory; load_checkpoint (read + crc32c verify) against a plain
   read() of the same file, the file evicted from the page cache before each read; crc32c alone.

usage: checkpoint_cost.py BUILD_DIR [--rounds 3] [--configs ...] [--note TEXT]
       checkpoint_cost.py --analyze RUN/metrics.jsonl [--warmup N]
       checkpoint_cost.py --self-test
"""
import argparse
import json
import os
import pathlib
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import common

THREADS = 1
# Steps per run: warm-up steps (not counted), then measured steps; a save every `every` steps.
CONFIGS = {
    "resnet18_2ranks": {"model": "resnet18", "ranks": 2, "data": "synthetic", "shape": (3, 32, 32),
                        "batch": 16, "warmup": 3, "steps": 21, "every": 4},
    "resnet18_1rank": {"model": "resnet18", "ranks": 1, "data": "synthetic", "shape": (3, 32, 32),
                       "batch": 16, "warmup": 3, "steps": 21, "every": 4},
    "fashion_cnn_2ranks": {"model": "fashion_cnn", "ranks": 2, "data": None, "batch": 64,
                           "warmup": 10, "steps": 70, "every": 5},
}
GOAL = 1.05
# Where the runs and checkpoint_bench write: the same file system as the benchmark's plain writes.
SCRATCH = os.environ.get("RUCHE_BENCH_SCRATCH", tempfile.gettempdir())


# ---------------------------------------------------------------- the analysis of one run

def train_records(path):
    out = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("split") == "train" and "time_s" in r and "saving" in r:
                out.append(r)
    return out


def classify(records, warmup):
    """records: train records, one per step (--log-every 1). Returns {class: [seconds]} for the
    steps after `warmup`, plus the save spans (steps with saving 1 per save)."""
    steps = {"snapshot": [], "saving": [], "commit": [], "clean": []}
    spans, span = [], 0
    for prev, r in zip(records, records[1:]):
        if r["step"] != prev["step"] + 1:
            raise SystemExit(f"checkpoint_cost: records are not one per step ({prev['step']} -> "
                             f"{r['step']}): run with --log-every 1")
        dt = r["time_s"] - prev["time_s"]
        if r["saving"]:
            span += 1
        elif prev["saving"]:
            spans.append(span)
            span = 0
        if r["step"] <= warmup:
            continue
        cls = {(0, 1): "snapshot", (1, 1): "saving", (1, 0): "commit",
               (0, 0): "clean"}[(prev["saving"], r["saving"])]
        steps[cls].append(dt)
    return steps, spans


def analyze(records, warmup, every):
    steps, spans = classify(records, warmup)
    saving = steps["snapshot"] + steps["saving"]  # every step with "saving": 1
    if not steps["clean"] or not saving:
        raise SystemExit(f"checkpoint_cost: need clean and saving steps, got "
                         f"{ {k: len(v) for k, v in steps.items()} }")
    clean = statistics.median(steps["clean"])
    out = {"counts": {k: len(v) for k, v in steps.items()},
           "median_ms": {k: (1e3 * statistics.median(v) if v else None) for k, v in steps.items()},
           "mean_ms": {k: (1e3 * statistics.fmean(v) if v else None) for k, v in steps.items()},
           "saving_over_clean": statistics.median(saving) / clean,
           "saving_mean_over_clean_mean": statistics.fmean(saving)
           / statistics.fmean(steps["clean"]),
           "later_saving_over_clean": (statistics.median(steps["saving"]) / clean
                                       if steps["saving"] else None),
           "save_span_steps": spans}
    out["median_ms"]["all_saving"] = 1e3 * statistics.median(saving)
    excess = {k: (1e3 * (statistics.median(v) - clean) if v else 0.0) for k, v in steps.items()}
    out["excess_ms"] = excess
    saves = max(1, out["counts"]["snapshot"])
    # one save's cost to training: its snapshot and commit steps and each of its saving steps
    per_save = (excess["snapshot"] * out["counts"]["snapshot"] + excess["commit"]
                * out["counts"]["commit"] + excess["saving"] * out["counts"]["saving"]) / saves
    out["cost_per_save_ms"] = per_save
    out["amortized_slowdown"] = per_save / (1e3 * clean * every)
    out["steps_s"] = dict(steps, all_saving=saving)
    return out


def self_test():
    """A made-up run: clean steps of 100 ms, a save every 5 steps from step 5: the snapshot step
    150 ms, two saving steps 110 ms, the commit step 130 ms."""
    recs, t, saving = [], 0.0, 0
    for step in range(1, 31):
        phase = (step - 1) % 5  # after_step(5) starts the save: step 6 is the snapshot step
        if step > 5 and phase == 0:
            dt, saving = 0.150, 1
        elif step > 5 and phase in (1, 2):
            dt, saving = 0.110, 1
        elif step > 5 and phase == 3:
            dt, saving = 0.130, 0
        else:
            dt, saving = 0.100, 0
        t += dt
        recs.append({"split": "train", "step": step, "time_s": t, "saving": saving})
    r = analyze(recs, warmup=2, every=5)
    assert r["counts"] == {"snapshot": 5, "saving": 10, "commit": 5, "clean": 8}, r["counts"]
    assert abs(r["saving_over_clean"] - 1.1) < 1e-9, r  # median of 5 x 150 and 10 x 110
    assert abs(r["excess_ms"]["snapshot"] - 50) < 1e-6, r
    assert abs(r["cost_per_save_ms"] - (50 + 30 + 2 * 10)) < 1e-6, r
    assert abs(r["amortized_slowdown"] - 100 / 500) < 1e-9, r
    assert r["save_span_steps"] == [3] * 5, r
    print("checkpoint_cost self-test: ok")


# ---------------------------------------------------------------- the driver

def train_command(build, name, out_dir):
    c = CONFIGS[name]
    return common.ruche_train_command(
        build, c["ranks"], c["model"], c,
        ["--batch-size", c["batch"], "--max-steps", c["warmup"] + c["steps"], "--log-every", "1",
         "--val-fraction", "0", "--threads", THREADS, "--checkpoint-every-steps", c["every"],
         "--out", out_dir])


def one_run(build, name):
    c = CONFIGS[name]
    with tempfile.TemporaryDirectory(prefix="ruche-ckptcost-", dir=SCRATCH) as out_dir:
        cmd = train_command(build, name, out_dir)
        proc = common.run_with_cpu_share(cmd, common.ruche_env(THREADS))
        if proc["returncode"] != 0:
            raise SystemExit(f"checkpoint_cost: {shlex.join(cmd)} failed ({proc['returncode']}):\n"
                             f"{proc['stdout'][-2000:]}\n{proc['stderr'][-2000:]}")
        result = analyze(train_records(f"{out_dir}/metrics.jsonl"), c["warmup"], c["every"])
        shards = sorted(p for p in pathlib.Path(out_dir, "ckpt").glob("step-*/shard-*"))
        result["shard_bytes"] = [p.stat().st_size for p in shards[-c["ranks"]:]]
    result["job_cores"], result["other_cores"] = proc["job_cores"], proc["other_cores"]
    result["wall_s"] = proc["wall_s"]
    return result


def bench_command(build, reps):
    return [f"{build}/checkpoint_bench", "--model", "resnet18", "--shape", "3,32,32",
            "--dir", SCRATCH, "--reps", str(reps)]


def run_bench(build, reps):
    cmd = bench_command(build, reps)
    proc = common.run_with_cpu_share(cmd, common.ruche_env(THREADS))
    if proc["returncode"] != 0:
        raise SystemExit(f"checkpoint_cost: {shlex.join(cmd)} failed:\n{proc['stderr'][-2000:]}")
    r = json.loads(proc["stdout"])
    r["job_cores"], r["other_cores"] = proc["job_cores"], proc["other_cores"]
    mb = r["state_bytes"] / 1e6
    r["mb_per_s"] = {k: common.summary([mb / s for s in v]) for k, v in r["seconds"].items()}
    r["ms"] = {k: common.summary([1e3 * s for s in v]) for k, v in r["seconds"].items()}
    med = {k: v["median"] for k, v in r["mb_per_s"].items()}
    r["ratios"] = {"write_shard_over_plain_write": med["write_shard"] / med["plain_write"],
                   "load_over_plain_read": med["load"] / med["plain_read"],
                   "load_cached_over_plain_read_cached":
                       med["load_cached"] / med["plain_read_cached"]}
    return r


def bootstrap_ratio(saving, clean, n=2000, seed=1):
    """95% interval of median(saving)/median(clean), resampling the steps."""
    rng = random.Random(seed)
    ratios = sorted(statistics.median(rng.choices(saving, k=len(saving)))
                    / statistics.median(rng.choices(clean, k=len(clean))) for _ in range(n))
    return [ratios[int(0.025 * n)], ratios[int(0.975 * n) - 1]]


fmt = common.median_range  # "median (min-max)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", nargs="?")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--bench-reps", type=int, default=9)
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--analyze", help="print the analysis of one metrics.jsonl")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--every", type=int, default=8)
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--render", help="re-write the .md of a result .json (with --note lines)")
    parser.add_argument("--rerun-throughput", metavar="RESULT_JSON",
                        help="re-run only checkpoint_bench (BUILD_DIR's) into a result, with a note")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    if args.render:
        path = pathlib.Path(args.render)
        record = json.loads(path.read_text())
        record["notes"] = list(dict.fromkeys(record["notes"] + args.note))
        path.write_text(json.dumps(record, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown(record))
        print(f"wrote {path.with_suffix('.md')}")
        return
    if args.analyze:
        r = analyze(train_records(args.analyze), args.warmup, args.every)
        r.pop("steps_s")
        print(json.dumps(r, indent=2))
        return
    if not args.build:
        parser.error("BUILD_DIR is required")
    if args.rerun_throughput:
        path = pathlib.Path(args.rerun_throughput)
        record = json.loads(path.read_text())
        build = str(pathlib.Path(args.build).resolve())
        la = os.getloadavg()[0]
        record["throughput"] = run_bench(build, args.bench_reps)
        record["bench_command"] = shlex.join(bench_command(build, args.bench_reps))
        record["notes"] = list(dict.fromkeys(record["notes"] + args.note + [
            f"the throughput part was re-run alone at {time.strftime('%H:%M')} (load average "
            f"{la:.2f}) by `{' '.join([sys.executable] + sys.argv)}`, git "
            f"{common.ruche_versions(build)['ruche_git']}"]))
        path.write_text(json.dumps(record, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown(record))
        print(f"wrote {path} and .md")
        return
    self_test()
    build = str(pathlib.Path(args.build).resolve())
    versions = common.ruche_versions(build)
    started = time.time()
    loadavg_before = os.getloadavg()
    runs = {n: [] for n in args.configs}
    for rnd in range(args.rounds):
        for name in args.configs:
            r = one_run(build, name)
            runs[name].append(r)
            print(f"  {name} round {rnd}: saving/clean {r['saving_over_clean']:.3f} "
                  f"(clean {r['median_ms']['clean']:.1f} ms, saving {r['median_ms']['all_saving']:.1f},"
                  f" snapshot {r['median_ms']['snapshot']:.1f}, commit "
                  f"{(r['median_ms']['commit'] or 0):.1f}), spans {r['save_span_steps']}, "
                  f"cores: job {r['job_cores']:.2f}, rest {r['other_cores']:.2f} "
                  f"[{time.time() - started:.0f} s]", flush=True)
    bench = run_bench(build, args.bench_reps)
    print(f"  checkpoint_bench: write_shard {bench['mb_per_s']['write_shard']['median']:.0f} MB/s "
          f"vs plain {bench['mb_per_s']['plain_write']['median']:.0f}; load "
          f"{bench['mb_per_s']['load']['median']:.0f} vs plain read "
          f"{bench['mb_per_s']['plain_read']['median']:.0f}; crc32c "
          f"{bench['mb_per_s']['crc32c']['median']:.0f} MB/s [{time.time() - started:.0f} s]",
          flush=True)

    rows = []
    for name in args.configs:
        rs = runs[name]
        c = CONFIGS[name]
        pooled = {k: [x for r in rs for x in r["steps_s"][k]] for k in rs[0]["steps_s"]}
        clean_med = statistics.median(pooled["clean"])
        saving_all = pooled["all_saving"]
        row = {"config": name, **{k: c[k] for k in ("model", "ranks", "batch", "every")},
               "input": "fashion-mnist 1x28x28" if c["data"] is None
               else "synthetic " + "x".join(map(str, c["shape"])),
               "shard_bytes": rs[0]["shard_bytes"],
               "saving_over_clean": common.summary([r["saving_over_clean"] for r in rs]),
               "saving_mean_over_clean_mean": common.summary(
                   [r["saving_mean_over_clean_mean"] for r in rs]),
               "pooled_saving_over_clean": statistics.median(saving_all) / clean_med,
               "pooled_ci95": bootstrap_ratio(saving_all, pooled["clean"]),
               "median_ms": {k: common.summary([r["median_ms"][k] for r in rs
                                                if r["median_ms"][k] is not None])
                             for k in ("clean", "all_saving", "saving", "snapshot", "commit")
                             if any(r["median_ms"][k] is not None for r in rs)},
               "excess_ms": {k: common.summary([r["excess_ms"][k] for r in rs])
                             for k in ("snapshot", "saving", "commit")},
               "cost_per_save_ms": common.summary([r["cost_per_save_ms"] for r in rs]),
               "amortized_slowdown": common.summary([r["amortized_slowdown"] for r in rs]),
               "save_span_steps": [s for r in rs for s in r["save_span_steps"]],
               "counts": {k: sum(r["counts"][k] for r in rs) for k in rs[0]["counts"]},
               "cores_used": {k: common.summary([r[f"{k}_cores"] for r in rs])
                              for k in ("job", "other")},
               "clean_spread_ms": {"p10": 1e3 * statistics.quantiles(pooled["clean"], n=10)[0],
                                   "p90": 1e3 * statistics.quantiles(pooled["clean"], n=10)[-1]},
               "runs": [{k: v for k, v in r.items() if k != "steps_s"} for r in rs],
               "steps_s": pooled}
        row["goal_met"] = row["saving_over_clean"]["median"] <= GOAL
        rows.append(row)
        print(f"{name}: saving/clean {fmt(row['saving_over_clean'], 1, 3)} (pooled "
              f"{row['pooled_saving_over_clean']:.3f}, 95% CI {row['pooled_ci95'][0]:.3f}-"
              f"{row['pooled_ci95'][1]:.3f}); snapshot +{fmt(row['excess_ms']['snapshot'])} ms, "
              f"commit +{fmt(row['excess_ms']['commit'])} ms, amortized "
              f"{fmt(row['amortized_slowdown'], 100, 2)}%", flush=True)
    elapsed = time.time() - started
    notes = list(args.note)
    notes.append(common.load_note(loadavg_before))
    record = {
        "benchmark": "checkpoint",
        "what": "step time while an asynchronous checkpoint save is in flight against without "
                "(same run); checkpoint write/load MB/s against a plain write+fsync / read of the "
                "same bytes",
        "goal": f"median step time while saving <= {GOAL:.2f} x median step time without",
        "machine": common.machine(),
        "versions": versions,
        "command": " ".join([sys.executable] + sys.argv),
        "env": f"OMP_NUM_THREADS={THREADS}; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; "
               f"scratch directory {SCRATCH} ({fs_of(SCRATCH)})",
        "per_round_commands": {n: f"OMP_NUM_THREADS={THREADS} "
                                  + shlex.join(train_command(build, n, "TMPDIR"))
                               for n in args.configs},
        "bench_command": shlex.join(bench_command(build, args.bench_reps)),
        "configs": {n: CONFIGS[n] for n in args.configs},
        "rounds": args.rounds,
        "elapsed_s": round(elapsed, 1),
        "notes": notes,
        "step_time": rows,
        "throughput": bench,
    }
    path = common.write_results("checkpoint", record, markdown(record))
    print(f"wrote {path}.json and .md")


def analysis(record):
    """The analysis, computed from the figures (a result is never edited by hand)."""
    out = []
    b = record["throughput"]
    mbs = {k: v["median"] for k, v in b["mb_per_s"].items()}
    ms = {k: v["median"] for k, v in b["ms"].items()}
    rows = {r["config"]: r for r in record["step_time"]}
    met = [n for n, r in rows.items() if r["goal_met"]]
    missed = [n for n, r in rows.items() if not r["goal_met"]]
    out.append(f"Goal (median step with a save in flight <= 1.05 x a clean step, same run): met by "
               f"{', '.join(met) or 'none'}; not met by {', '.join(missed) or 'none'}.")
    for n, r in rows.items():
        spans = r["save_span_steps"]
        lo, hi = r["pooled_ci95"]
        verdict = ("clearly above 1.05" if lo > GOAL else "clearly below 1.05" if hi < GOAL
                   else "the interval straddles 1.05: within the noise of this machine")
        out.append(
            f"{n}: a step with a save in flight takes {r['pooled_saving_over_clean']:.2f} x a "
            f"clean step pooled (95% CI {lo:.2f}-{hi:.2f}, {verdict}); per run "
            f"{fmt(r['saving_over_clean'], 1, 2)}. Saves spanned "
            f"{min(spans) if spans else '-'}-{max(spans) if spans else '-'} step(s) with "
            "saving 1, so the step holding the snapshot copy also holds the whole shard write "
            "(a save cannot be split into its snapshot and its write from the step records; "
            "checkpoint_bench times the snapshot alone). One save costs training "
            f"{fmt(r['cost_per_save_ms'], 1, 0)} ms in all (snapshot, write and commit steps' "
            f"excess over a clean step of {r['median_ms']['clean']['median']:.0f} ms): "
            f"{fmt(r['amortized_slowdown'], 100, 1)}% amortized over a save every {r['every']} "
            "steps, and nothing measurable at ruche's default cadence (every epoch or 30 minutes).")
    state = b["state_bytes"]
    snap_ms_fresh, snap_ms_reused = ms["snapshot_fresh"], ms["snapshot_reused"]
    out.append(
        f"The snapshot copy (training thread, at the save step) of resnet18's whole state "
        f"({state / 1e6:.0f} MB) takes {snap_ms_fresh:.0f} ms into a fresh buffer, as the "
        f"trainer does (Checkpointer::start_save makes a new std::vector every save: its pages are "
        f"faulted in and zeroed by the copy), against {snap_ms_reused:.0f} ms into a buffer "
        f"already faulted in ({snap_ms_fresh / snap_ms_reused:.1f}x). With 2 ranks each copies "
        f"half: about {snap_ms_fresh / 2:.0f} ms per rank. Keeping the snapshot buffer between "
        "saves (and handing it back from the writer) would cut the training thread's share to "
        f"about {snap_ms_reused / 2:.0f} ms per rank.")
    for n in ("resnet18_2ranks", "resnet18_1rank"):
        if n not in rows:
            continue
        r = rows[n]
        ranks = r["ranks"]
        snap = snap_ms_fresh / ranks
        exc = r["excess_ms"]["snapshot"]["median"]
        out.append(
            f"{n}: the save step's excess ({exc:.0f} ms median) against the snapshot alone "
            f"(~{snap:.0f} ms per rank from checkpoint_bench): the rest, ~{max(0, exc - snap):.0f}"
            f" ms, is the writer thread (crc32c, copying {state / ranks / 1e6:.0f} MB into the "
            "page cache, fsync) taking CPU from the training threads: the job already uses "
            f"{r['cores_used']['job']['median']:.2f} cores and the rest of the machine "
            f"{r['cores_used']['other']['median']:.2f} of its {record['machine']['cores']}, so "
            "there is no idle core for the writer to run on, and an all-reduce waits for the "
            "slower rank.")
    if "resnet18_2ranks" in rows and "resnet18_1rank" in rows:
        a, c = rows["resnet18_2ranks"], rows["resnet18_1rank"]
        out.append(
            f"1 rank vs 2 ranks (resnet18): one save costs {c['cost_per_save_ms']['median']:.0f} "
            f"ms with 1 rank writing {c['shard_bytes'][0] / 1e6:.0f} MB and "
            f"{a['cost_per_save_ms']['median']:.0f} ms with 2 ranks writing "
            f"{a['shard_bytes'][0] / 1e6:.0f} MB each, at the same time, on the same 2 cores and "
            "the same disk: sharding halves each rank's bytes but not the machine's.")
    out.append(
        f"Writes: write_shard reaches {mbs['write_shard']:.0f} MB/s against "
        f"{mbs['plain_write']:.0f} MB/s for a plain write()+fsync of the same bytes "
        f"({b['ratios']['write_shard_over_plain_write']:.2f}x). Its steps by hand (median ms): "
        f"crc32c {ms['steps_crc32c']:.0f}, write() {ms['steps_write']:.0f}, fsync "
        f"{ms['steps_fsync']:.0f}, close+rename {ms['steps_close_rename']:.1f}, directory fsync "
        f"{ms['steps_dir_fsync']:.1f}, mkdir {ms['steps_mkdir']:.1f}; total "
        f"{ms['steps_total']:.0f}. crc32c alone runs at {mbs['crc32c']:.0f} MB/s, "
        f"{mbs['crc32c'] / mbs['plain_write']:.1f}x the disk's write speed: it is not the "
        "bottleneck, but it is done before the write, not overlapped with it. write() into the "
        "page cache and a new file's first fsync vary a lot from one repetition to the next on "
        "this VM (see min-max): the medians are the figures to read.")
    out.append(
        f"Loads: load_checkpoint reads and verifies at {mbs['load']:.0f} MB/s from a cold page "
        f"cache against {mbs['plain_read']:.0f} MB/s for a plain read() of the same file into a "
        f"fresh buffer ({b['ratios']['load_over_plain_read']:.2f}x) and "
        f"{mbs['plain_read_reused']:.0f} MB/s into a buffer already faulted in: the fresh "
        "buffer's page faults, not the disk, are much of a load's time here (load_checkpoint "
        "resizes a new std::vector for the whole state). From the page cache: "
        f"{mbs['load_cached']:.0f} against {mbs['plain_read_cached']:.0f} MB/s. The file was "
        "evicted from this VM's page cache before every cold read (mincore says so), but the "
        "virtual disk may be cached by the host: 'the disk' is the disk as this VM sees it.")
    out.append(
        "The machine was shared: the training steps of a run vary by the p10-p90 spread in the "
        "table, more than the 5% under test for fashion_cnn; the ratios are within-run and "
        "the runs alternate configurations, so drift hits both sides alike, but single "
        "ratios are noisy; the pooled bootstrap interval says how noisy.")
    return out


def fs_of(path):
    try:
        out = subprocess.run(["df", "-T", path], capture_output=True, text=True).stdout.split("\n")
        dev, kind = out[1].split()[:2]
        return f"{kind} on {dev}"
    except (OSError, IndexError, ValueError):
        return "?"


def markdown(record):
    m, v = record["machine"], record["versions"]
    b = record["throughput"]
    lines = ["# Cost of checkpointing: step time while saving, save/load MB/s", "",
             f"Machine: {m.get('cpu', '?')}, {m['cores']} cores, {m['memory_gib']} GiB, GPU "
             f"{m['gpu']}; {v['ruche']} (git {v['ruche_git']}). **Shared machine**: other "
             "engineers' builds and tests ran at the same time (load averages and the cores the "
             f"rest of the machine used are below). {record['env']}.", "",
             "## Step time while an asynchronous save is in flight (same run)", "",
             f"Goal: {record['goal']}. One train record per step (--log-every 1); a step's time is "
             "the difference of consecutive time_s. Steps after the warm-up are classed by their "
             "record's `saving` flag and the previous record's: *saving* (1 after 1: the writer "
             "thread is writing the shard), *clean* (0 after 0), *snapshot* (1 after 0: the "
             "boundary before it copied the state on the training thread) and *commit* (0 after "
             "1: the boundary before it collected the shard and rank 0 wrote manifest, COMMIT, "
             "latest and pruned). Median (min-max) over the rounds of each run's figure; "
             "'pooled' takes every step of every round, with a bootstrap 95% interval.", "",
             "| config | input | batch/rank | state per shard, MB | save every | saving / clean "
             "(median of runs) | pooled (95% CI) | goal <= 1.05 | clean step, ms | saving step, "
             "ms | steps a save spans | cores: job / rest of machine |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["step_time"]:
        spans = r["save_span_steps"]
        lines.append(
            f"| {r['config']} | {r['input']} | {r['batch']} | "
            f"{'/'.join(f'{x / 1e6:.1f}' for x in r['shard_bytes'])} | {r['every']} steps | "
            f"{fmt(r['saving_over_clean'], 1, 3)} | {r['pooled_saving_over_clean']:.3f} "
            f"({r['pooled_ci95'][0]:.3f}-{r['pooled_ci95'][1]:.3f}) | "
            f"{'met' if r['goal_met'] else 'NOT met'} | {fmt(r['median_ms']['clean'])} | "
            f"{fmt(r['median_ms']['all_saving'])} | "
            f"{statistics.median(spans) if spans else '-'} ({min(spans) if spans else '-'}-"
            f"{max(spans) if spans else '-'}) | {fmt(r['cores_used']['job'], 1, 2)} / "
            f"{fmt(r['cores_used']['other'], 1, 2)} |")
    lines += ["", "The save's other costs, on the training thread at step boundaries (excess over "
              "the run's clean median step, ms; median (min-max) over runs), and what a save "
              "costs in all, amortized over the steps between saves:", "",
              "| config | snapshot step excess | commit step excess | saving step excess | "
              "cost per save, ms | amortized slowdown | clean steps p10-p90, ms | steps "
              "(snapshot/saving/commit/clean) |", "|---|---|---|---|---|---|---|---|"]
    for r in record["step_time"]:
        c = r["counts"]
        lines.append(
            f"| {r['config']} | {fmt(r['excess_ms']['snapshot'])} | "
            f"{fmt(r['excess_ms']['commit'])} | {fmt(r['excess_ms']['saving'])} | "
            f"{fmt(r['cost_per_save_ms'])} | {fmt(r['amortized_slowdown'], 100, 2)}% | "
            f"{r['clean_spread_ms']['p10']:.1f}-{r['clean_spread_ms']['p90']:.1f} | "
            f"{c['snapshot']}/{c['saving']}/{c['commit']}/{c['clean']} |")
    mbs, ms = b["mb_per_s"], b["ms"]
    lines += ["", "## Save and load throughput against the disk's own", "",
              f"checkpoint_bench: {b['model']} ({b['shape']}) training state (parameters, "
              f"momentum, buffers): {b['state_bytes'] / 1e6:.1f} MB as one shard, "
              f"{b['reps']} repetitions after a warm-up, the three writes (and the three cold reads) "
              f"in an order rotating every repetition. Before each cold read the file is evicted from the page cache "
              f"({b['eviction']}); mincore said the share still resident was at most "
              f"{max(max(x) for k, x in b['resident_share_before_read'].items() if k != 'plain_read_cached'):.3f}. "
              "MB = 1e6 bytes; median (min-max).", "",
              "| operation | MB/s | ms | against |", "|---|---|---|---|",
              f"| write_shard (crc32c + write + fsync + rename + dir fsync) | "
              f"{fmt(mbs['write_shard'], 1, 0)} | {fmt(ms['write_shard'])} | "
              f"{b['ratios']['write_shard_over_plain_write']:.2f} x plain write |",
              f"| plain write() + fsync, same bytes, same directory (the disk's own) | "
              f"{fmt(mbs['plain_write'], 1, 0)} | {fmt(ms['plain_write'])} | |",
              f"| load_checkpoint, cold (read + crc32c verify) | {fmt(mbs['load'], 1, 0)} | "
              f"{fmt(ms['load'])} | {b['ratios']['load_over_plain_read']:.2f} x plain read |",
              f"| plain read() of the same file, cold (the disk's own) | "
              f"{fmt(mbs['plain_read'], 1, 0)} | {fmt(ms['plain_read'])} | |",
              f"| load_checkpoint, page cache | {fmt(mbs['load_cached'], 1, 0)} | "
              f"{fmt(ms['load_cached'])} | "
              f"{b['ratios']['load_cached_over_plain_read_cached']:.2f} x cached read |",
              f"| plain read(), page cache | {fmt(mbs['plain_read_cached'], 1, 0)} | "
              f"{fmt(ms['plain_read_cached'])} | |",
              f"| crc32c alone | {fmt(mbs['crc32c'], 1, 0)} | {fmt(ms['crc32c'], 1, 2)} | |",
              f"| snapshot into a fresh buffer (as the trainer does) | "
              f"{fmt(mbs['snapshot_fresh'], 1, 0)} | {fmt(ms['snapshot_fresh'])} | |",
              f"| snapshot into a reused buffer | {fmt(mbs['snapshot_reused'], 1, 0)} | "
              f"{fmt(ms['snapshot_reused'])} | |",
              f"| restore (state into the tensors) | {fmt(mbs['restore'], 1, 0)} | "
              f"{fmt(ms['restore'])} | |",
              f"| commit_checkpoint (manifest, COMMIT, latest, fsyncs, prune) | | "
              f"{fmt(ms['commit'])} | |",
              "", f"Cores: checkpoint_bench {b['job_cores']:.2f}, rest of the machine "
              f"{b['other_cores']:.2f}.", ""]
    lines += ["## Analysis", ""] + [f"- {x}" for x in analysis(record)] + [""]
    lines += ["## Commands", ""]
    for n, cmd in record["per_round_commands"].items():
        lines.append(f"- {n}: `{cmd}`")
    lines.append(f"- throughput: `{record['bench_command']}`")
    lines += common.footer_lines(record["notes"], record["command"], "", record["elapsed_s"])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
