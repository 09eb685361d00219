#!/usr/bin/env python3
"""Data parallelism across 2 hosts on links limited to a ladder of rates (issue 16; docs/
ARCHITECTURE.md, Benchmarks). The hosts are network namespaces made by
tests/support/netns_hosts.sh (one rank each, TCP between them over veths and a bridge, Open MPI's
ob1 + tcp BTL); each host's link is limited both ways with tbf to each rate in turn.

At each rate:
  all-reduce  build/allreduce_bench across the hosts: ruche's MpiCommunicator all_reduce against
              raw MPI_Allreduce on the same link, alternating in every round; bus bandwidth as
              nccl-tests define it; ratio = ruche busbw / MPI busbw per round, median (min-max)
              over the rounds (goal >= 0.95 from 1 MiB up)
  training    a few steps of fashion_cnn (1x28x28) and resnet18 (CIFAR stem, 3x32x32) on
              synthetic data, 1 rank per host, --timeline: step time, all-reduce time and the
              exposed communication per step (all-reduce after the rank's backward ends, as
              benchmarks/overlap.py), median (min-max) over the measured steps of both ranks
The veths' byte counters show the traffic crossed the links. projection.py reads the result and
sets its step model's prediction beside each measured rate.

usage: network.py BUILD_DIR [--rates 500mbit,1gbit,2gbit,5gbit,none] [--rounds 5]
                            [--models fashion_cnn resnet18] [--out-dir DIR]
Needs root and `ip netns` + `tc` (exit 77 otherwise, saying why). About 10 minutes on 2 cores.
"""
import argparse
import json
import os
import pathlib
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import common
import overlap

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE.parent
HOSTS = str(SRC / "tests" / "support" / "netns_hosts.sh")
ID = "rnetbench"  # the hosts rnetbench-h0/h1 and their /24 are this benchmark's own
RATES = ["500mbit", "1gbit", "2gbit", "5gbit", "none"]
# Steps per run: warm-up (not counted) then measured. fashion_cnn's gradients are 3.5 MB (one
# bucket and a bit), resnet18's 44.7 MB (3 buckets): at 0.5 Gbit/s ~0.75 s of all-reduce a step.
MODELS = {
    "fashion_cnn": {"shape": (1, 28, 28), "batch": 64, "warmup": 3, "steps": 12},
    "resnet18": {"shape": (3, 32, 32), "batch": 16, "warmup": 2, "steps": 6},
}
# allreduce_bench across the link: 4 KiB to 16 MiB (resnet18's buckets are 1 and ~25 MiB;
# projection.py extends the curve at the largest size's bus bandwidth), about 16 MiB per side
# and round, so 0.5 Gbit/s takes ~30 s.
BENCH_ARGS = ["--min-bytes", "4096", "--max-bytes", str(16 << 20), "--step", "4",
              "--round-bytes", str(16 << 20), "--min-iters", "3", "--max-iters", "1000",
              "--warmup", "1", "--sides", "mpi,ruche"]
NET_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive", "OMPI_MCA_pml": "ob1",
           "OMPI_MCA_btl": "tcp,self"}


def gbit(rate):
    """tc rate text -> Gbit/s (None for unlimited)."""
    if rate == "none":
        return None
    for suffix, scale in (("gbit", 1.0), ("mbit", 1e-3), ("kbit", 1e-6)):
        if rate.endswith(suffix):
            return float(rate[:-len(suffix)]) * scale
    raise SystemExit(f"network: rate {rate!r}: use tc's Nmbit or Ngbit, or none")


def hosts(*args, timeout=60, check=True):
    p = subprocess.run([HOSTS, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise SystemExit(f"network: netns_hosts.sh {' '.join(args)} failed ({p.returncode}): "
                         f"{p.stderr.strip()}")
    return p


def veth_bytes():
    """Bytes through the bridge ends of both hosts' veths, both directions."""
    total = 0
    for k in range(2):
        for d in ("rx", "tx"):
            p = subprocess.run(["ip", "netns", "exec", f"{ID}-ctl", "cat",
                                f"/sys/class/net/v{k}/statistics/{d}_bytes"],
                               capture_output=True, text=True)
            total += int(p.stdout.strip() or 0)
    return total


def mpirun(hostfile):
    return ["mpirun", "--allow-run-as-root", "--hostfile", hostfile, "-np", "2",
            "--map-by", "node", "--bind-to", "none", "-x", "OMP_NUM_THREADS",
            "-x", "OMP_WAIT_POLICY"]


def on_hosts(cmd, timeout):
    """cmd run in the launcher namespace (mpirun there reaches the hosts by the launch agent)."""
    env = dict(common.ruche_env(1), **NET_ENV)
    env.pop("RUCHE_FAKE_NODES", None)
    env.pop("OMPI_MCA_plm_rsh_agent", None)
    start = time.monotonic()
    p = subprocess.run([HOSTS, "run", ID, *cmd], env=env, capture_output=True, text=True,
                       timeout=timeout)
    p.seconds = time.monotonic() - start
    if p.returncode != 0:
        raise SystemExit(f"network: {shlex.join(cmd)} failed ({p.returncode}) after "
                         f"{p.seconds:.0f} s:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return p


def allreduce_at(build, hostfile, rounds):
    with tempfile.TemporaryDirectory(prefix="ruche-netbench-") as out:
        cmd = mpirun(hostfile) + [f"{build}/allreduce_bench", *BENCH_ARGS, "--rounds",
                                  str(rounds), "--out", out]
        before = veth_bytes()
        p = on_hosts(cmd, timeout=300)
        crossed = veth_bytes() - before
        rec = json.loads(next(pathlib.Path(out).glob("allreduce-*.json")).read_text())
    rows = []
    for r in rec["results"]:
        mpi, ruche = r["sides"]["mpi"], r["sides"]["ruche"]
        rows.append({"bytes": r["bytes"], "iterations": r["iterations"],
                     "mpi_us": common.summary(mpi["samples_us"]),
                     "ruche_us": common.summary(ruche["samples_us"]),
                     "mpi_busbw_gbs": mpi["busbw_gbs"], "ruche_busbw_gbs": ruche["busbw_gbs"],
                     "ratio": common.summary(r["ratio_rounds"])})
    return {"rows": rows, "veth_bytes": crossed, "wall_s": p.seconds, "command": shlex.join(cmd),
            "versions": rec["versions"], "load": [rec["load_before"], rec["load_after"]]}


def per_step(trace, warmup):
    """Per measured step and rank: step (optimizer end to optimizer end), forward, backward,
    all-reduce total and exposed (after the rank's backward ends), ms."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    ranks = sorted({e["pid"] for e in events if e.get("ph") == "X"})
    out = {k: [] for k in ("step", "forward", "backward", "allreduce", "exposed", "wait")}
    for r in ranks:
        steps = overlap.split_steps([e for e in events if e.get("pid") == r])
        for k in range(warmup, len(steps)):
            st = steps[k]
            if not st["backward"] or not st["allreduce"]:
                continue
            end_bwd = max(e["ts"] + e["dur"] for e in st["backward"])
            iv = [(e["ts"], e["ts"] + e["dur"]) for e in st["allreduce"]]
            out["forward"].append(sum(e["dur"] for e in st["forward"]) / 1e3)
            out["backward"].append(sum(e["dur"] for e in st["backward"]) / 1e3)
            out["allreduce"].append(sum(e["dur"] for e in st["allreduce"]) / 1e3)
            out["exposed"].append(overlap.length_after(iv, end_bwd) / 1e3)
            out["wait"].append(st["wait"]["dur"] / 1e3)
            prev = steps[k - 1]["optimizer"] if k > 0 else []
            if prev and st["optimizer"]:
                out["step"].append((max(e["ts"] + e["dur"] for e in st["optimizer"]) -
                                    max(e["ts"] + e["dur"] for e in prev)) / 1e3)
    return out


def train_at(build, hostfile, model):
    spec = MODELS[model]
    with tempfile.TemporaryDirectory(prefix="ruche-netbench-") as out:
        cmd = mpirun(hostfile) + [
            f"{build}/ruche", "train", "--model", model, "--data", "synthetic",
            "--synthetic-shape", ",".join(map(str, spec["shape"])),
            "--batch-size", str(spec["batch"]), "--max-steps", str(spec["warmup"] + spec["steps"]),
            "--log-every", str(spec["warmup"]), "--val-fraction", "0", "--threads", "1",
            "--no-tensorboard", "--checkpoint-every-minutes", "0", "--timeline", "--out", out]
        before = veth_bytes()
        p = on_hosts(cmd, timeout=300)
        crossed = veth_bytes() - before
        trace = json.loads(pathlib.Path(out, "timeline.json").read_text())
        steps = per_step(trace, spec["warmup"])
        buckets = sorted({e["name"] for e in (trace["traceEvents"] if isinstance(trace, dict)
                                              else trace) if e.get("cat") == "allreduce"})
    row = {"model": model, "batch_per_rank": spec["batch"], "shape": list(spec["shape"]),
           "warmup_steps": spec["warmup"], "measured_steps": spec["steps"],
           "run_s": p.seconds, "veth_bytes": crossed, "buckets": buckets,
           "command": shlex.join(cmd)}
    for key, values in steps.items():
        row[f"{key}_ms"] = common.summary(values) if values else None
    return row


def fmt_gbit(rate):
    g = gbit(rate)
    return "unlimited" if g is None else f"{g:g} Gbit/s"


def markdown(rec):
    m = rec["machine"]
    L = ["# Data parallelism across 2 hosts on rate-limited links", "",
         f"Machine: {m.get('cpu', '?')}, {m['cores']} cores, {m['memory_gib']} GiB, GPU: "
         f"{m.get('gpu', 'none')}; {rec['versions']['mpi']}; {rec['versions']['ruche']}. Two hosts "
         "made of Linux network namespaces on this one machine (tests/support/netns_hosts.sh), one "
         "rank each, TCP between them over veths and a bridge (Open MPI ob1, btl tcp,self), each "
         "host's link limited both ways with tbf to the rate of the row. Both hosts share the 2 "
         "cores and one kernel: at high rates the TCP stack's CPU cost, not the link, bounds "
         "what is measured; the unlimited row is that bound.", "",
         "## All-reduce: ruche vs raw MPI_Allreduce on the same link", "",
         f"f32 sum in place; median (min-max) over {rec['rounds']} rounds, the two sides "
         "alternating in every round; busbw as nccl-tests (bytes / time * 2(n-1)/n, GB/s = 1e9 "
         "B/s); ratio = ruche busbw / MPI busbw of the same round (goal >= 0.95 from 1 MiB up).",
         "", "| rate | size | MPI us | ruche us | MPI busbw GB/s | ruche busbw GB/s | ratio | "
         "goal |", "|---|---|---|---|---|---|---|---|"]
    for r in rec["rates"]:
        for row in r["allreduce"]["rows"]:
            size = row["bytes"]
            name = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
            ratio = row["ratio"]["median"]
            goal = ("latency" if size < 1 << 20 else "met" if ratio >= 0.95 else "**missed**")
            L.append(f"| {fmt_gbit(r['rate'])} | {name} | "
                     f"{common.median_range(row['mpi_us'])} | "
                     f"{common.median_range(row['ruche_us'])} | {row['mpi_busbw_gbs']:.3f} | "
                     f"{row['ruche_busbw_gbs']:.3f} | {common.median_range(row['ratio'], 1, 2)} "
                     f"| {goal} |")
    L += ["", "What the links delivered: MPI's bus bandwidth at the largest size, in Gbit/s (for 2 "
          "ranks busbw = bytes / time: each rank sends the buffer's size once in each "
          "direction), against the tbf rate.", "", "| rate | MPI busbw Gbit/s | of the rate |",
          "|---|---|---|"]
    for r in rec["rates"]:
        top = max(r["allreduce"]["rows"], key=lambda x: x["bytes"])
        got = top["mpi_busbw_gbs"] * 8
        share = "-" if r["gbit"] is None else f"{100 * got / r['gbit']:.0f}%"
        L.append(f"| {fmt_gbit(r['rate'])} | {got:.2f} | {share} |")
    L += ["", "## Training step across the hosts", "",
          "Synthetic data, 1 rank per host, 1 thread per rank, --timeline. Per measured step and "
          "rank (both ranks pooled), median (min-max) ms: the step, backward, the buckets' "
          "all-reduce and the exposed communication (all-reduce after the rank's backward ends, "
          "as benchmarks/overlap.py; it includes waiting for the slower rank).", "",
          "| rate | model | batch/rank | step ms | backward ms | all-reduce ms | exposed ms | "
          "exposed / step | bytes over the veths |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rec["rates"]:
        for t in r["training"]:
            share = t["exposed_ms"]["median"] / t["step_ms"]["median"]
            L.append(f"| {fmt_gbit(r['rate'])} | {t['model']} | {t['batch_per_rank']} | "
                     f"{common.median_range(t['step_ms'])} | "
                     f"{common.median_range(t['backward_ms'])} | "
                     f"{common.median_range(t['allreduce_ms'])} | "
                     f"{common.median_range(t['exposed_ms'])} | {100 * share:.0f}% | "
                     f"{t['veth_bytes'] / 1e6:.0f} MB |")
    L += ["", "projection.py sets its step model's prediction beside each of these rows "
          "(projection-DATE.md, 'Check (c)')."]
    notes = rec["notes"] + [rec["load"]]
    L += common.footer_lines(notes, rec["command"], "as root", rec["wall_s"])
    L += ["Per-rate commands (in the launcher namespace):", ""]
    for r in rec["rates"]:
        L.append(f"- {fmt_gbit(r['rate'])}: `{r['allreduce']['command']}`")
    for t in rec["rates"][0]["training"]:
        L.append(f"- {t['model']}: `{t['command']}`")
    return "\n".join(L) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", nargs="?", default=str(SRC / "build"))
    parser.add_argument("--rates", default=",".join(RATES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    build = str(pathlib.Path(args.build).resolve())
    rates = args.rates.split(",")
    for r in rates:
        gbit(r)
    if os.geteuid() != 0:
        print("network: skipped: network namespaces need root")
        sys.exit(77)
    for tool in ("ip", "tc", "mpirun"):
        if shutil.which(tool) is None:
            print(f"network: skipped: no `{tool}`")
            sys.exit(77)
    # Private copies: a rebuild of BUILD by someone else mid-run does not change what is measured.
    private = tempfile.mkdtemp(prefix="ruche-netbench-bin-")
    for name in ("ruche", "allreduce_bench"):
        shutil.copy2(f"{build}/{name}", private)
    source_build, build = build, private
    start, load_before = time.monotonic(), os.getloadavg()
    p = hosts("up", ID, "2", check=False)
    if p.returncode == 77:
        print("network: skipped:", p.stderr.strip())
        sys.exit(77)
    if p.returncode != 0:
        raise SystemExit(f"network: netns_hosts.sh up {ID} 2 failed: {p.stderr.strip()}")
    results = []
    try:
        with tempfile.NamedTemporaryFile("w", prefix="ruche-netbench-hosts-", suffix=".txt",
                                         delete=False) as f:
            f.write(hosts("hostfile", ID, "1").stdout)
            hostfile = f.name
        for rate in rates:
            for k in range(2):
                hosts("rate", ID, str(k), rate)
            print(f"network: {fmt_gbit(rate)}: all-reduce ...", flush=True)
            ar = allreduce_at(build, hostfile, args.rounds)
            for row in ar["rows"]:
                print(f"  {row['bytes']:>9} B  mpi {row['mpi_us']['median']:10.1f} us  ruche "
                      f"{row['ruche_us']['median']:10.1f} us  ratio "
                      f"{common.median_range(row['ratio'], 1, 2)}", flush=True)
            training = []
            for model in args.models:
                t = train_at(build, hostfile, model)
                print(f"  {model}: step {common.median_range(t['step_ms'])} ms, exposed "
                      f"{common.median_range(t['exposed_ms'])} ms ({t['run_s']:.0f} s)",
                      flush=True)
                training.append(t)
            results.append({"rate": rate, "gbit": gbit(rate), "allreduce": ar,
                            "training": training})
    finally:
        hosts("down", ID, check=False)
        if "hostfile" in locals():
            os.unlink(hostfile)
        shutil.rmtree(private, ignore_errors=True)
    rec = {
        "benchmark": "network",
        "what": "2 hosts (network namespaces, TCP over veths, tbf-limited links) x 1 rank: "
                "ruche all-reduce vs raw MPI_Allreduce per rate, and fashion_cnn / resnet18 "
                "training steps' exposed communication per rate",
        "machine": dict(common.machine(), nodes="2 pretend hosts (network namespaces) on 1 "
                        "machine", transport="TCP over veth + bridge, tbf both ways per host"),
        "versions": dict(common.ruche_versions(source_build), mpi=results[0]["allreduce"]["versions"]
                         ["mpi"], ruche=results[0]["allreduce"]["versions"]["ruche"]),
        "command": "benchmarks/network.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "rounds": args.rounds, "ranks": 2, "models": MODELS, "bench_args": BENCH_ARGS,
        "environment": NET_ENV,
        "goal": {"ratio": 0.95, "from_bytes": 1 << 20},
        "tbf": "rate R burst 64kb latency 50ms on both ends of each host's veth",
        "rates": results, "notes": args.note,
        "load": common.load_note(load_before),
        "wall_s": time.monotonic() - start,
    }
    base = common.write_results("network", rec, "", args.out_dir)
    base.with_suffix(".md").write_text(markdown(rec))
    print(f"network: wrote {base}.json and .md ({rec['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
