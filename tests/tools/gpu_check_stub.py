#!/usr/bin/env python3
"""benchmarks/gpu_check.sh on CPU, with stub steps instead of the GPU bundle's
(RUCHE_GPU_CHECK_PLAN): steps that pass, fail, hang, exit 77, and a fake gtest binary whose
cases pass, fail, hang, crash and skip. Checks that a hanging step is killed at its budget
(with what it started), later steps still run, the results say what each did, gtest cases are
recorded one by one and go on after a hang, a failure or a crash; that summary.md and
results.json are whole after a SIGKILL of the check at any moment; that --rerun-failed runs
only what did not pass (within its 180 s) and keeps the rest; and --plan. With fake bundles
(a stub ruche, and a stub ruche-previous as make gpu-bundle PREVIOUS=... packs): the bundle step
wraps ruche-previous and reads MANIFEST's previous line, and the throughput step passes
--previous (and --rounds, bf16) to benchmarks/gpu_throughput.py only when the bundle has one.

usage: gpu_check_stub.py WORKDIR
"""
import json
import os
import shlex
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECK = ROOT / "benchmarks" / "gpu_check.sh"

# A gtest look-alike: --gtest_list_tests and --gtest_filter (patterns, '-' negatives), the
# [ RUN ] / [ OK ] / [ FAILED ] / [ SKIPPED ] lines, flushed as gtest does.
FAKE_GTEST = r'''
import fnmatch, os, sys, time
n = int(os.environ.get("FAKE_CASES", "0"))
cases = ["CudaOps.Pass1", "CudaOps.Fail", "CudaOps.Hang", "CudaOps.Pass2", "CudaOps.Crash",
         "CudaOps.Pass3", "CudaOps.Skip", "NcclWorld.Pass"] + [f"Many.Case{i}" for i in range(n)]
flt = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--gtest_filter=")), "*")
pos, _, neg = flt.partition("-")
match = lambda name, pats: any(fnmatch.fnmatchcase(name, p) for p in pats.split(":") if p)
chosen = [c for c in cases if match(c, pos or "*") and not match(c, neg)]
if "--gtest_list_tests" in sys.argv:
    suite = None
    for c in chosen:
        s, t = c.split(".")
        if s != suite:
            print(s + ".")
            suite = s
        print("  " + t + ("  # GetParam() = 1" if t == "Pass3" else ""))
    sys.exit(0)
for c in chosen:
    print(f"[ RUN      ] {c}", flush=True)
    if c.endswith("Fail"):
        print("fake_test.cc:12: Failure\nExpected equality of these values", flush=True)
        print(f"[  FAILED  ] {c}, where GetParam() = 1 (3 ms)", flush=True)
    elif c.endswith("Hang"):
        time.sleep(60)
    elif c.endswith("Crash"):
        print("CUDA error: an illegal memory access was encountered", flush=True)
        os._exit(134)
    elif c.endswith("Skip"):
        print(f"[  SKIPPED ] {c} (0 ms)", flush=True)
    else:
        if c.startswith("Many."):
            time.sleep(0.01)
        print(f"no newline[       OK ] {c} (1 ms)" if c.endswith("Pass2") else
              f"[       OK ] {c} (1 ms)", flush=True)
'''


def fake_bundle(work, name, previous):
    """WORK/NAME.tar.xz: bundle/ with a stub env.sh, bin/ruche (it sees a "cuda:0"), MANIFEST,
    and with previous a bin/ruche-previous and MANIFEST's previous line."""
    b = work / name / "bundle"
    (b / "bin").mkdir(parents=True)
    (b / "env.sh").write_text('export RUCHE_BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)\n')
    stub = ('#!/bin/sh\ncase "$1" in\n  devices) echo "cuda:0 Stub GPU"; '
            'echo "CUDA runtime 13.0 (stub)" ;;\n  --version) echo "ruche 0.1.0 (%s)" ;;\n'
            '  *) echo "error: a stub"; exit 1 ;;\nesac\n')
    manifest = "ruche GPU bundle, built 2026-12-07T00:00:00Z on vm\ncommit abc1234\n"
    (b / "bin" / "ruche").write_text(stub % "new")
    (b / "bin" / "ruche").chmod(0o755)
    if previous:
        (b / "bin" / "ruche-previous").write_text(stub % "previous")
        (b / "bin" / "ruche-previous").chmod(0o755)
        manifest += ("previous: bin/ruche-previous <- old.tar.xz (commit 0123abc, built "
                     "2026-12-01T00:00:00Z), `ruche --version`: ruche 0.1.0; lib/previous: none\n")
    (b / "MANIFEST").write_text(manifest)
    archive = work / f"{name}.tar.xz"
    subprocess.run(["tar", "-cJf", str(archive), "-C", str(b.parent), "bundle"], check=True)
    return archive


def previous_plumbing(work, py):
    """The bundle step and the throughput step on fake bundles with and without ruche-previous:
    what the throughput step hands benchmarks/gpu_throughput.py (its log's command line)."""
    plan = [{"name": "bundle", "budget_s": 20, "what": "the fake bundle"},
            {"name": "throughput", "budget_s": 45, "gpu": True, "what": "gpu_throughput.py"}]
    (work / "previous_plan.json").write_text(json.dumps(plan))
    for previous in (True, False):
        name = "with_previous" if previous else "without_previous"
        scratch = work / f"scratch_{name}"
        env = dict(os.environ, RUCHE_GPU_CHECK_PLAN=str(work / "previous_plan.json"),
                   RUCHE_PYTHON=py, RUCHE_GPU_SCRATCH=str(scratch),
                   RUCHE_GPU_BUNDLE=str(fake_bundle(work, name, previous)))
        out = work / f"out_{name}"
        proc = check([str(out)], env, timeout=120)
        r = results(out)
        expect(r["bundle"]["result"] == "pass",
               f"{name}: the fake bundle loads ({r['bundle']['key']}; {proc.stderr[-300:]})")
        log = (scratch / "logs" / "throughput.log").read_text()
        cmd = shlex.split(next(l for l in log.splitlines() if l.startswith("$ "))[2:])
        wrapper = str(scratch / "bin" / "ruche-previous")
        summary = (out / "summary.md").read_text()
        if previous:
            at = cmd.index("--previous") if "--previous" in cmd else -1
            expect(at > 0 and cmd[at + 1] == wrapper
                   and cmd[cmd.index("--precisions") + 1:cmd.index("--sides")] == ["bf16"]
                   and cmd[cmd.index("--rounds") + 1] == "4"
                   and "torch_compile" not in cmd
                   and any("previous ruche: bin/ruche-previous <- old.tar.xz (commit 0123abc"
                           in a for a in cmd),
                   f"with ruche-previous the step passes --previous {wrapper}, bf16, 4 rounds, "
                   f"the MANIFEST line: {shlex.join(cmd[2:])}")
            ran = subprocess.run([wrapper, "--version"], capture_output=True, text=True).stdout
            expect(ran.strip() == "ruche 0.1.0 (previous)", f"the wrapper runs it: {ran.strip()}")
            expect("Bundle abc1234; previous ruche: bin/ruche-previous <- old.tar.xz" in summary,
                   "summary.md names the bundle's commit and the previous ruche")
        else:
            expect("--previous" not in cmd and "--rounds" not in cmd and "torch_compile" in cmd
                   and cmd[cmd.index("--precisions") + 1:cmd.index("--sides")]
                   == ["bf16", "tf32"] and not pathlib.Path(wrapper).exists()
                   and "previous ruche" not in summary,
                   f"without it, the step's command is as before: {shlex.join(cmd[2:])}")
        t = r["throughput"]
        expect(t["result"] == "skip" if "no CUDA device" in t["note"] else t["seconds"],
               f"{name}: throughput {t['result']} ({t['key'] or t['note']})")


def check(args, env, **kw):
    return subprocess.run(["bash", str(CHECK), *args], env=env, capture_output=True, text=True,
                          **kw)


def results(out):
    return {s["name"]: s for s in json.loads((out / "results.json").read_text())["steps"]}


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok: {what}")


def main() -> int:
    work = pathlib.Path(sys.argv[1]).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    gtest = work / "fake_gtest.py"
    gtest.write_text(FAKE_GTEST)
    ran = work / "ran.txt"
    py = sys.executable

    def cmd(name, script):  # a stub step: notes that it ran, then runs script in sh
        return ["sh", "-c", f"echo {name} >> {ran}; {script}"]

    plan = [
        {"name": "passes", "budget_s": 5, "what": "exits 0", "key": r"^key: (\d+)",
         "command": cmd("passes", "echo key: 42")},
        {"name": "fails", "budget_s": 5, "what": "exits 3",
         "command": cmd("fails", "echo 'error: broken'; exit 3")},
        {"name": "hangs", "budget_s": 2, "what": "sleeps, its child too",
         "command": cmd("hangs", "sleep 60 & echo $! > {work}/child.pid; sleep 60")},
        {"name": "skips", "budget_s": 5, "what": "exits 77",
         "command": cmd("skips", "echo 'skipped: no CUDA device'; exit 77")},
        {"name": "ops", "budget_s": 15, "case_s": 1, "what": "fake gtest, not NCCL",
         "gtest": ["{python}", str(gtest)], "filter": "-*Nccl*"},
        {"name": "ops_nccl", "budget_s": 5, "case_s": 1, "what": "fake gtest, NCCL",
         "gtest": ["{python}", str(gtest)], "filter": "*Nccl*"},
        {"name": "big", "budget_s": 170, "what": "fails at once; too big to rerun",
         "command": cmd("big", "exit 1")},
        {"name": "after", "budget_s": 5, "what": "runs after the rest",
         "command": cmd("after", "echo done")},
    ]
    (work / "plan.json").write_text(json.dumps(plan))
    env = dict(os.environ, RUCHE_GPU_CHECK_PLAN=str(work / "plan.json"), RUCHE_PYTHON=py,
               RUCHE_GPU_SCRATCH=str(work / "scratch"))

    # --plan: every step, its budget, the total
    text = check(["--plan"], env).stdout
    total = next(l for l in text.splitlines() if l.split()[:1] == ["total"])
    expect(all(f"{s['name']:12s} {s['budget_s']:4d} s" in text for s in plan)
           and f"{sum(s['budget_s'] for s in plan)} s" in total,
           "--plan lists each step's budget and the total")

    real = check(["--plan"], {k: v for k, v in env.items() if k != "RUCHE_GPU_CHECK_PLAN"}).stdout
    total = int(next(l for l in real.splitlines() if l.split()[:1] == ["total"]).split()[1])
    expect(total <= 300, f"the real plan's budgets fit command 1's 5 minutes ({total} s)")

    # Command 1: every step, in order.
    out1 = work / "out1"
    start = time.monotonic()
    proc = check([str(out1)], env, timeout=90)
    elapsed = time.monotonic() - start
    print(proc.stdout[-3000:], proc.stderr[-2000:])
    r = results(out1)
    expect(proc.returncode == 1, "exit 1 when a step failed")
    expect(r["passes"]["result"] == "pass" and r["passes"]["key"] == "42", "pass, key figure")
    expect(r["fails"]["result"] == "fail" and "error: broken" in r["fails"]["note"],
           "fail, with the line that says why")
    expect(r["hangs"]["result"] == "timeout" and 1.9 <= r["hangs"]["seconds"] < 4,
           f"the hanging step killed at its 2 s budget ({r['hangs']['seconds']} s)")
    child = int((work / "scratch" / "work" / "hangs" / "child.pid").read_text())
    time.sleep(0.2)
    expect(not pathlib.Path(f"/proc/{child}").exists()
           or "Z" in pathlib.Path(f"/proc/{child}/stat").read_text().split()[2],
           "what the hanging step started was killed with it")
    expect(r["skips"]["result"] == "skip", "exit 77 is a skip")
    cases = {k: v["result"] for k, v in r["ops"]["cases"].items()}
    expect(cases == {"CudaOps.Pass1": "pass", "CudaOps.Fail": "fail", "CudaOps.Hang": "timeout",
                     "CudaOps.Pass2": "pass", "CudaOps.Crash": "fail", "CudaOps.Pass3": "pass",
                     "CudaOps.Skip": "skip"},
           f"gtest cases one by one, on after a failure, a hang and a crash: {cases}")
    expect(r["ops"]["result"] == "fail" and "3 pass, 2 fail, 1 timeout, 1 skip" in r["ops"]["key"],
           f"the gtest step's key figure: {r['ops']['key']}")
    expect("illegal memory access" in r["ops"]["cases"]["CudaOps.Crash"]["note"],
           "a crashed case keeps its last words")
    expect(r["ops_nccl"]["result"] == "pass" and list(r["ops_nccl"]["cases"]) == ["NcclWorld.Pass"],
           "the NCCL filter runs the NCCL cases alone")
    expect(r["after"]["result"] == "pass", "later steps still run")
    expect(elapsed < 30, f"command 1 took {elapsed:.0f} s")
    summary = (out1 / "summary.md").read_text()
    expect(summary.startswith("# ruche GPU check: FAIL: fails, hangs, ops, big")
           and "| hangs | timeout |" in summary and "CudaOps.Hang" in summary,
           "summary.md: verdict, one line per step, the cases not passed")
    expect((out1 / "logs.tar.gz").is_file(), "logs.tar.gz")

    # Command 2: --rerun-failed runs what did not pass, while it fits in 180 s.
    shutil.copy(out1 / "results.json", work / "earlier.json")
    ran.unlink()
    out2 = work / "out2"
    proc = check([str(out2), "--rerun-failed", str(work / "earlier.json")], env, timeout=90)
    r2 = results(out2)
    reran = ran.read_text().split()
    expect(reran == ["fails", "hangs"], f"--rerun-failed ran the failed command steps: {reran}")
    expect(r2["ops"]["seconds"] is not None and not r2["ops"].get("earlier"),
           "--rerun-failed ran the failed gtest step")
    expect(all(r2[n].get("earlier") and r2[n]["result"] == r[n]["result"]
               for n in ("passes", "skips", "ops_nccl", "after")),
           "the steps that passed or skipped keep their earlier results")
    expect(r2["big"]["result"] == "not-run" and "180 s" in r2["big"]["note"],
           "a failed step over the rerun's 180 s is left for later")
    expect(proc.returncode == 1, "exit 1: still failing")

    # The previous ruche's plumbing (make gpu-bundle PREVIOUS=...).
    previous_plumbing(work, py)

    # SIGKILL of the whole check at random moments (many cases, so many rewrites): the files
    # on disk are whole, and list the steps that finished.
    kill_plan = [{"name": "first", "budget_s": 5, "what": "quick", "command": ["true"]},
                 {"name": "many", "budget_s": 20, "case_s": 2, "what": "200 quick cases",
                  "gtest": ["{python}", str(gtest)], "filter": "Many.*"},
                 {"name": "last", "budget_s": 5, "what": "quick", "command": ["true"]}]
    (work / "kill_plan.json").write_text(json.dumps(kill_plan))
    kenv = dict(env, RUCHE_GPU_CHECK_PLAN=str(work / "kill_plan.json"), FAKE_CASES="200")
    rng = random.Random(7)
    for i in range(5):
        out = work / f"killed{i}"
        proc = subprocess.Popen(["bash", str(CHECK), str(out)], env=kenv,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5 + rng.random() * 2.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        data = json.loads((out / "results.json").read_text())
        summary = (out / "summary.md").read_text()
        steps = {s["name"]: s for s in data["steps"]}
        done = sum(1 for c in (steps["many"].get("cases") or {}).values()
                   if c["result"] == "pass")
        expect(steps["first"]["result"] == "pass" and summary.startswith("# ruche GPU check:")
               and summary.rstrip().endswith("results.json`.") and "| first | pass |" in summary,
               f"after SIGKILL #{i}: results.json and summary.md whole "
               f"(many: {steps['many']['result']}, {done} cases recorded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
