#!/usr/bin/env python3
"""Chaos soak (issue 22): a 2-rank job under launcher/ruche-run, checkpointing with
--checkpoint-every-steps auto, is hit again and again, and must end with the weights of a run
that was never touched, bit for bit, without losing a committed checkpoint.

Episodes (each one ruche-run job of the same training, compared with one uninterrupted run):
  kills     kill -9 of a random rank at a random moment of each generation (uniform in
            --delay LO,HI seconds after its ranks appear: start-up, resume, steps, saves), N times
            in a row, each after the restart of the one before
  writer    RUCHE_FAULT=crash_in_writer:S+@R: a rank killed inside its shard write (the first
            save from step S on), then random kills
  commit    RUCHE_FAULT=crash_after_shard_write:S+@R: killed between its durable shard and COMMIT
  hang      SIGSTOP of a random rank: the others' watchdog (--comm-timeout) aborts the job (70),
            ruche-run restarts it
  corrupt   both ranks frozen (SIGSTOP), a byte of the newest committed checkpoint flipped, a rank
            killed: the restart must skip it (named) and resume from the one before
  disk      RUN/ckpt a tmpfs in a mount namespace (unshare -m, root): filled while a save is in
            flight, freed after the first warning; failed saves warn and training goes on; plus
            random kills
Per kill the driver notes the newest committed checkpoint C just before it; the restart must
resume from C or later ("resumed from .../step-X", X >= C), else C was lost. Every "skipping"
of a checkpoint the soak did not corrupt is a lost checkpoint too.

usage: chaos.py BUILD_DIR [--seed S] [--kills N] [--steps N] [--episodes a,b,...] [--note TEXT]
                [--out-dir DIR]
Writes benchmarks/results/chaos-<date>.{json,md} (or --out-dir). Not part of `make test`:
minutes of wall time. The seed is recorded; the same seed replays the same plan (the moments are
wall-clock, so not the same steps).
"""
import argparse
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

import common

HERE = pathlib.Path(__file__).resolve().parent
RUCHE_RUN = str(HERE.parent / "launcher" / "ruche-run")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--seed", type=int, default=None, help="default: from the clock (recorded)")
    ap.add_argument("--kills", type=int, default=8, help="random kills per kill episode")
    ap.add_argument("--steps", type=int, default=3000, help="steps of the training")
    ap.add_argument("--delay", default="0.3,3.0", help="kill moment after a generation starts, s")
    ap.add_argument("--cadence", default="auto:5%", help="--checkpoint-every-steps")
    ap.add_argument("--episodes", default="kills,kills,writer,commit,hang,corrupt,disk")
    ap.add_argument("--comm-timeout", type=float, default=5)
    ap.add_argument("--note", default="")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--work", default=None, help="run directories (default: a temp dir)")
    return ap.parse_args()


ARGS = parse_args()
SEED = ARGS.seed if ARGS.seed is not None else int(time.time()) % 100000
RNG = random.Random(SEED)
WORK = pathlib.Path(ARGS.work or tempfile.mkdtemp(prefix="ruche-chaos-"))
WORK.mkdir(parents=True, exist_ok=True)
# A private copy: a rebuild of BUILD_DIR during the soak must not change (or remove) the binary
# the restarts run.
RUCHE = str(WORK / "ruche")
shutil.copy2(os.path.join(ARGS.build, "ruche"), RUCHE)
LO, HI = (float(x) for x in ARGS.delay.split(","))
ENV = dict(common.ruche_env(1), OMP_WAIT_POLICY="passive", OMPI_MCA_mpi_yield_when_idle="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
ENV.pop("RUCHE_FAULT", None)
TRAIN = ["--model", "lenet", "--data", "synthetic", "--synthetic-shape", "1,28,28",
         "--batch-size", "32", "--max-steps", str(ARGS.steps), "--seed", "5",
         "--log-every", "100", "--no-tensorboard", "--checkpoint-every-steps", ARGS.cadence,
         "--keep-checkpoints", "3", "--comm-timeout", str(ARGS.comm_timeout)]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def rank_pids(out):
    """{rank: pid} of the ruche processes training into `out` (not mpirun, not ruche-run)."""
    found = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "exe") != RUCHE:
                continue
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            if str(out).encode() not in cmd:
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = [e for e in env if e.startswith(b"OMPI_COMM_WORLD_RANK=")]
        if rank:
            found[int(rank[0].split(b"=")[1])] = int(entry.name)
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def committed(ckpt):
    """Committed steps under ckpt (a path; for the disk episode, seen through /proc/PID/root)."""
    steps = []
    try:
        for d in os.listdir(ckpt):
            if d.startswith("step-") and os.path.exists(os.path.join(ckpt, d, "COMMIT")):
                steps.append(int(d[5:]))
    except OSError:
        pass
    return sorted(steps)


def weights(path):
    z = np.load(path)
    return {k: z[k] for k in z.files}


def same_bits(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class Episode:
    def __init__(self, name, kind, env=None, tmpfs=False):
        self.name, self.kind, self.tmpfs = name, kind, tmpfs
        self.out = WORK / name
        self.env = dict(ENV, **(env or {}))
        self.events = []
        self.corrupted = set()
        self.logfile = WORK / f"{name}.log"

    def ckpt_view(self):
        if self.tmpfs:  # the mount lives in the namespace: look through its shell's root
            return f"/proc/{self.proc.pid}/root{self.out}/ckpt"
        return str(self.out / "ckpt")

    def start(self):
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        cmd = [RUCHE_RUN, "-np", "2", "--max-restarts", "60", "--abort-grace", "5", "--", RUCHE,
               "train", "--out", str(self.out), *TRAIN]
        if self.tmpfs:
            (self.out / "ckpt").mkdir()
            # Wait for a save in flight (a step directory without COMMIT), fill the disk, and
            # free it 1.5 s after the first warning.
            watcher = (
                'mount -t tmpfs -o size=32m tmpfs "$CKPT" || exit 99\n'
                '( while [ ! -e "$CKPT/latest" ]; do sleep 0.05; done; n=0\n'
                '  while [ $n -lt 20000 ]; do n=$((n+1)); for d in "$CKPT"/step-*; do\n'
                '    if [ -d "$d" ] && [ ! -e "$d/COMMIT" ]; then n=99999; break; fi; done; done\n'
                '  head -c 64m /dev/zero > "$CKPT/filler" 2>/dev/null; echo "chaos: disk filled"\n'
                '  while ! grep -q "NOT saved" "$LOG"; do sleep 0.02; done; sleep 1.5\n'
                '  rm -f "$CKPT/filler"; echo "chaos: disk freed" ) &\n'
                'exec "$@"')
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", watcher, "sh", *cmd]
            self.env.update(CKPT=str(self.out / "ckpt"), LOG=str(self.logfile))
        self.log = open(self.logfile, "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def text(self):
        return self.logfile.read_text(errors="replace")

    def next_generation(self, previous, timeout=120):
        """The ranks of the next generation (both up, none of `previous`), or None when the job
        ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return None
            pids = rank_pids(self.out)
            if len(pids) == 2 and not set(pids.values()) & set(previous or {}):
                return pids
            time.sleep(0.01)
        return None

    def resumes_so_far(self):
        return len(RESUME.findall(self.text()))

    def newest(self):
        """The newest committed checkpoint the soak did not corrupt."""
        steps = [c for c in committed(self.ckpt_view()) if c not in self.corrupted]
        return steps[-1] if steps else 0

    def run(self, actions):
        self.start()
        pids = None
        seen_pids = set()
        for action in actions:
            pids = self.next_generation(seen_pids)
            if pids is None:
                break
            seen_pids |= set(pids.values())
            if action == "fault":  # the injected kill comes by itself
                newest = self.newest()
                while all(alive(p) for p in pids.values()) and self.proc.poll() is None:
                    newest = self.newest()
                    time.sleep(0.01)
                self.events.append({"kind": self.kind, "newest_before": newest,
                                    "moment_s": None, "rank": None,
                                    "resume_index": self.resumes_so_far()})
                continue
            delay = RNG.uniform(LO, HI)
            rank = RNG.randrange(2)
            end = time.monotonic() + delay
            died = False
            while time.monotonic() < end:
                if not all(alive(p) for p in pids.values()):
                    died = True
                    break
                time.sleep(0.01)
            if died:  # the generation died without us: a crash the soak did not cause
                self.events.append({"kind": "unplanned death", "newest_before": self.newest(),
                                    "moment_s": None, "rank": None,
                                    "resume_index": self.resumes_so_far()})
                continue
            newest = self.newest()
            event = {"kind": action, "rank": rank, "moment_s": round(delay, 3),
                     "newest_before": newest, "at": round(time.monotonic() - self.t0, 2),
                     "resume_index": self.resumes_so_far()}
            try:
                if action == "kill":
                    os.kill(pids[rank], signal.SIGKILL)
                elif action == "stop":
                    os.kill(pids[rank], signal.SIGSTOP)
                elif action == "corrupt":
                    for p in pids.values():
                        os.kill(p, signal.SIGSTOP)
                    newest = self.newest()
                    event["newest_before"] = newest
                    if newest:
                        shard = pathlib.Path(self.ckpt_view()) / f"step-{newest:08d}" / \
                            "shard-00000-of-00002.bin"
                        b = bytearray(shard.read_bytes())
                        b[len(b) // 2] ^= 0x40
                        shard.write_bytes(bytes(b))
                        event["corrupted"] = newest
                        self.corrupted.add(newest)
                    os.kill(pids[rank], signal.SIGKILL)
                    other = pids[1 - rank]
                    os.kill(other, signal.SIGKILL)
            except ProcessLookupError:
                event["kind"] += " (rank already gone)"
            self.events.append(event)
        try:
            self.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.wall = time.monotonic() - self.t0
        self.log.close()
        return self.report()

    def report(self):
        text = self.text()
        code = self.proc.returncode
        resumes = RESUME.findall(text)
        resumed = [int(s) if s else 0 for s, _ in resumes]
        skipped = [int(s) for s in re.findall(r"skipping \S*?step-(\d+)", text)]
        corrupted = {e.get("corrupted") for e in self.events if e.get("corrupted")}
        restarts = len(re.findall(r"restart \d+ of \d+ from the last checkpoint", text))
        model = self.out / "model.npz"
        identical = code == 0 and model.exists() and same_bits(weights(model), REFERENCE)
        # The restart after a failure resumes with the first resume line printed after it (the
        # first start has none: it has no --resume). A generation killed before it said where it
        # resumed from shifts nothing: the count is taken at the failure.
        lost = []
        for e in self.events:
            i = e.pop("resume_index")
            if i < len(resumed):
                e["resumed"] = resumed[i]
                if e.get("corrupted"):
                    e["fell_back"] = resumed[i] < e["corrupted"]
                elif resumed[i] < e["newest_before"]:
                    lost.append(e["newest_before"])
        lost += [s for s in skipped if s not in corrupted]
        cadences = [json.loads(l) for l in (self.out / "metrics.jsonl").read_text().splitlines()
                    if '"ckpt_every"' in l] if (self.out / "metrics.jsonl").exists() else []
        kills = [e for e in self.events if e["kind"] in ("kill", "corrupt", "writer", "commit")]
        return {
            "episode": self.name, "kind": self.kind, "exit": code, "wall_s": round(self.wall, 1),
            "kills": len(kills), "hangs": sum(e["kind"] == "stop" for e in self.events),
            "unplanned_deaths": sum(e["kind"] == "unplanned death" for e in self.events),
            "restarts": restarts, "bit_identical": identical,
            "lost": sorted(set(lost)), "skipped": skipped, "corrupted": sorted(corrupted),
            "fell_back": sum(bool(e.get("fell_back")) for e in self.events),
            "watchdog_aborts": len(re.findall(r"watchdog", text)) and
            len(re.findall(r"exited with code 70", text)),
            "disk_full_warnings": text.count("NOT saved"),
            "faults_injected": text.count("RUCHE_FAULT injected"),
            "commits": len(re.findall(r"^checkpoint \S+ committed", text, re.M)),
            "cadence": [(r["step"], r["ckpt_every"], round(r["ckpt_cost_pct"], 2))
                        for r in cadences][-3:],
            "events": self.events,
            "tail": text[-1500:] if not identical else "",
        }


def plan(kind):
    k = ARGS.kills
    if kind == "kills":
        return Episode, {}, ["kill"] * k
    if kind == "writer":
        return Episode, {"RUCHE_FAULT": f"crash_in_writer:{ARGS.steps // 4}+@1"}, \
            ["fault"] + ["kill"] * 3
    if kind == "commit":
        return Episode, {"RUCHE_FAULT": f"crash_after_shard_write:{ARGS.steps // 3}+@0"}, \
            ["fault"] + ["kill"] * 3
    if kind == "hang":
        return Episode, {}, ["stop", "stop"]
    if kind == "corrupt":
        return Episode, {}, ["corrupt", "kill", "corrupt"]
    if kind == "disk":
        return Episode, {}, ["kill", "kill"]
    raise SystemExit(f"chaos: unknown episode {kind}")


def main():
    global REFERENCE
    started = time.monotonic()
    log(f"chaos soak: seed {SEED}, work {WORK}")
    ref_out = WORK / "reference"
    shutil.rmtree(ref_out, ignore_errors=True)
    t = time.monotonic()
    ref = subprocess.run([RUCHE_RUN, "-np", "2", "--max-restarts", "0", "--", RUCHE, "train",
                          "--out", str(ref_out), *TRAIN], env=ENV, capture_output=True, text=True)
    ref_wall = time.monotonic() - t
    if ref.returncode != 0:
        raise SystemExit(f"chaos: the reference run failed:\n{ref.stdout[-2000:]}{ref.stderr[-2000:]}")
    REFERENCE = weights(ref_out / "model.npz")
    ref_cadence = [json.loads(l) for l in (ref_out / "metrics.jsonl").read_text().splitlines()
                   if '"ckpt_every"' in l]
    cadence_lines = [l for l in ref.stdout.splitlines() if l.startswith("checkpoint cadence")]
    log(f"reference: {ref_wall:.1f} s; {cadence_lines[:1]}")
    episodes = []
    for i, kind in enumerate(ARGS.episodes.split(",")):
        if kind == "disk" and (os.geteuid() != 0 or not shutil.which("unshare")):
            log("disk: skipped (needs root and unshare -m)")
            continue
        cls, env, actions = plan(kind)
        fault_kind = {"writer": "writer", "commit": "commit"}.get(kind, kind)
        ep = cls(f"{i:02d}-{kind}", fault_kind, env=env, tmpfs=kind == "disk")
        if kind in ("writer", "commit"):
            ep.env["RUCHE_FAULT_MARK"] = str(WORK / f"{ep.name}.mark")
            pathlib.Path(ep.env["RUCHE_FAULT_MARK"]).unlink(missing_ok=True)
        r = ep.run(actions)
        episodes.append(r)
        log(f"{ep.name}: exit {r['exit']}, {r['kills']} kills, {r['hangs']} hangs, "
            f"{r['restarts']} restarts, bit-identical {r['bit_identical']}, lost {r['lost']}, "
            f"{r['wall_s']} s" + (f"\n{r['tail']}" if r["tail"] else ""))
    totals = {
        "kills_tried": sum(e["kills"] for e in episodes),
        "kills_survived": sum(e["kills"] for e in episodes if e["bit_identical"]),
        "hangs_tried": sum(e["hangs"] for e in episodes),
        "hangs_caught": sum(min(e["hangs"], e["watchdog_aborts"] or 0) for e in episodes
                            if e["exit"] == 0),
        "episodes": len(episodes),
        "bit_identical_finishes": sum(e["bit_identical"] for e in episodes),
        "checkpoints_lost": sum(len(e["lost"]) for e in episodes),
        "corruptions_skipped": sum(len(e["corrupted"]) for e in episodes
                                   if set(e["corrupted"]) <= set(e["skipped"])),
        "corruptions": sum(len(e["corrupted"]) for e in episodes),
        "disk_full_warnings": sum(e["disk_full_warnings"] for e in episodes),
        "faults_injected": sum(e["faults_injected"] for e in episodes),
        "unplanned_deaths": sum(e["unplanned_deaths"] for e in episodes),
        "restarts": sum(e["restarts"] for e in episodes),
    }
    elapsed = time.monotonic() - started
    record = {"benchmark": "chaos", "seed": SEED, "machine": common.machine(),
              "versions": common.ruche_versions(ARGS.build), "train": TRAIN,
              "delay_s": [LO, HI], "reference_wall_s": round(ref_wall, 1),
              "reference_cadence": cadence_lines,
              "reference_ckpt_every": [(r["step"], r["ckpt_every"], round(r["ckpt_cost_pct"], 2))
                                       for r in ref_cadence],
              "totals": totals, "episodes": episodes, "elapsed_s": round(elapsed, 1),
              "note": ARGS.note}
    m = record["machine"]
    lines = [f"# Chaos soak ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {m.get('cpu', '?')}, {m['cores']} cores, {m['memory_gib']} GiB, GPU "
             f"{m.get('gpu', 'none')}; host {m['host']}. Seed {SEED}. ruche "
             f"{record['versions']['ruche_git']}.", "",
             f"Training: 2 ranks x 1 thread under launcher/ruche-run, `ruche train "
             f"{' '.join(TRAIN)}`; an uninterrupted run of it took {ref_wall:.1f} s. "
             f"{cadence_lines[0] if cadence_lines else ''}", "",
             "| | |", "| --- | --- |",
             f"| kills survived / tried | {totals['kills_survived']} / {totals['kills_tried']} |",
             f"| hangs caught (SIGSTOP, watchdog) / tried | {totals['hangs_caught']} / "
             f"{totals['hangs_tried']} |",
             f"| bit-identical finishes / episodes | {totals['bit_identical_finishes']} / "
             f"{totals['episodes']} |",
             f"| checkpoints lost | {totals['checkpoints_lost']} |",
             f"| corrupted checkpoints skipped on resume / corrupted | "
             f"{totals['corruptions_skipped']} / {totals['corruptions']} |",
             f"| saves refused by a full disk (warned, training went on) | "
             f"{totals['disk_full_warnings']} |",
             f"| RUCHE_FAULT kills (in the shard write, in the commit window) | "
             f"{totals['faults_injected']} |",
             f"| deaths the soak did not cause | {totals['unplanned_deaths']} |",
             f"| restarts by ruche-run | {totals['restarts']} |", "",
             "| episode | exit | kills | hangs | restarts | commits | bit-identical | lost | "
             "wall s | cadence (step, every, cost %) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in episodes:
        lines.append(f"| {e['episode']} | {e['exit']} | {e['kills']} | {e['hangs']} | "
                     f"{e['restarts']} | {e['commits']} | {'yes' if e['bit_identical'] else 'NO'} "
                     f"| {len(e['lost'])} | {e['wall_s']} | {e['cadence'][-1:]} |")
    lines += ["", "Kill moments are uniform in "
              f"[{LO}, {HI}] s after a generation's ranks appear (start-up and resume included); "
              "the random rank and moment of every kill are in the JSON (`events`), with the "
              "newest committed checkpoint just before it and the step the restart resumed from.",
              ""]
    lines += common.footer_lines([ARGS.note] if ARGS.note else [],
                                 "benchmarks/chaos.py " + " ".join(sys.argv[1:]), "", elapsed)
    base = common.write_results("chaos", record, "\n".join(lines) + "\n", ARGS.out_dir)
    log(f"wrote {base}.json and .md: {totals}")


REFERENCE = None
RESUME = re.compile(r"resumed from \S*?step-(\d+)|(starting fresh)")
main()
