#!/usr/bin/env python3
"""Elastic runs (issue 17): ruche-run --elastic drops a host that is lost for good and goes on
with the other hosts' ranks from the last checkpoint; --min-ranks stops it (exit 69); --grow lets
a host that comes back join at the next restart. Hosts of network and UTS namespaces
(tests/support/netns_hosts.sh), 1 rank each, as in multihost.py. One case per ctest:

  shrink     3 hosts: rank 2 is held at step 30 (RUCHE_FAULT hang_at_step, so that the kill
             lands mid-run at a known point), then its host's processes are killed and its link
             taken down for good. ruche-run drops the host and restarts on 2 ranks from the last
             checkpoint (step C); the log names the host, the step, 2 ranks, the global batch
             12 -> 8 and the lr, and says it is no longer bit-identical; the run finishes. Its
             weights equal, bit for bit, a run started on 3 ranks with --max-steps C and resumed
             on 2 by hand; every training sample of the interrupted epoch is trained on exactly
             once (432 training samples = 18 x 6 x the batch of 4: no cut at the new world size),
             counted through RUCHE_TRACE_SAMPLES (the loader's test-only sample log).
  min_ranks  2 hosts, --min-ranks 2: one lost leaves 1 rank: exit 69, one clear line, the last
             checkpoint intact (ruche inspect verifies every shard), nothing left running.
  grow       3 hosts, --grow: host 2 lost and dropped; its link comes back; at the next restart
             (a host-1 crash) it is re-admitted and the job runs on 3 ranks again.
  no_grow    the same without --grow: the next restart stays on 2 ranks.

usage: elastic.py RUCHE_BINARY MPIEXEC WORKDIR CASE
Needs root and `ip netns`: otherwise exits 77 (skipped) saying why.
"""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from dp_common import (ENV, MPI_FLAGS, MPIEXEC, ONLY, RUCHE, WORK, check, finish, flags,
                       same_bits, weights, write_data, write_net)

SRC = pathlib.Path(__file__).resolve().parents[2]
HOSTS = str(SRC / "tests" / "support" / "netns_hosts.sh")
RUCHE_RUN = str(SRC / "launcher" / "ruche-run")
CASES = {"shrink": ("elshr", 3), "min_ranks": ("elmin", 2), "grow": ("elgrow", 3),
         "no_grow": ("elnog", 3)}
if len(ONLY) != 1 or next(iter(ONLY)) not in CASES:
    sys.exit(f"usage: elastic.py RUCHE MPIEXEC WORKDIR CASE, CASE one of {', '.join(CASES)}")
CASE = next(iter(ONLY))
ID, NHOSTS = CASES[CASE]

if os.geteuid() != 0:
    print("skipped: network namespaces need root")
    sys.exit(77)
if shutil.which("ip") is None:
    print("skipped: no `ip` (iproute2)")
    sys.exit(77)

NET_ENV = dict(ENV, OMPI_MCA_pml="ob1", OMPI_MCA_btl="tcp,vader,self")
NET_ENV.pop("RUCHE_FAKE_NODES", None)
NET_ENV.pop("OMPI_MCA_plm_rsh_agent", None)
for k in [k for k in NET_ENV if k.startswith("RUCHE_FAULT") or k == "RUCHE_TRACE_SAMPLES"]:
    NET_ENV.pop(k)


def hosts(*args, timeout=60):
    return subprocess.run([HOSTS, *args], capture_output=True, text=True, timeout=timeout)


def host(k):
    return f"{ID}-h{k}"


def up():
    p = hosts("up", ID, str(NHOSTS))
    if p.returncode == 77:
        print("skipped:", p.stderr.strip())
        sys.exit(77)
    if p.returncode != 0:
        print(p.stderr)
        sys.exit(f"netns_hosts.sh up {ID} {NHOSTS} failed")
    hostfile = WORK / "hostfile"
    hostfile.write_text(hosts("hostfile", ID, "1").stdout)
    return str(hostfile)


def pids_in(k):
    return [int(p) for p in subprocess.run(["ip", "netns", "pids", host(k)], capture_output=True,
                                           text=True).stdout.split()]


def lose(k):
    """Host k lost for good: its processes killed, then its link down."""
    for pid in pids_in(k):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.3)  # the daemon's closed connection reaches mpirun before the cable is pulled
    hosts("link", ID, str(k), "down")


def leftovers():
    return [p for k in range(NHOSTS) for p in pids_in(k)]


class Job:
    """ruche-run in the launcher namespace, its output read as it comes."""

    def __init__(self, cmd, env):
        self.lines = []
        self.p = subprocess.Popen([HOSTS, "run", ID, *cmd], env=dict(NET_ENV, **env),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)

    def text(self):
        return "".join(self.lines)

    def saw(self, text):
        return any(text in line for line in self.lines)

    def wait_for(self, what, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.p.poll() is None and not what():
            time.sleep(0.05)
        return what()

    def end(self, seconds):
        try:
            rc = self.p.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            rc = None
        self.reader.join(timeout=5)
        return rc

    def kill(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def on_hosts(cmd, timeout=120):
    return subprocess.run([HOSTS, "run", ID, *cmd], env=NET_ENV, capture_output=True, text=True,
                          timeout=timeout)


# 480 samples, 48 of them held out for validation: 432 training samples, 18 x (6 x batch 4), so
# an epoch is 36 steps on 3 ranks and 54 on 2, each a whole number of steps.
data = str(write_data(WORK / "data.npz", 480, 48))
net = str(write_net("net.prototxt"))
COMMON = {"--data": data, "--net": net, "--batch-size": "4", "--val-fraction": "0.1",
          "--seed": "7", "--lr": "0.5", "--lr-scaling": "linear", "--lr-policy": "fixed",
          "--warmup-steps": "2", "--warmup-epochs": "0",
          "--checkpoint-every-steps": "6", "--log-every": "10",
          "--comm-timeout": "20"}
ELASTIC = ["--abort-grace", "3", "--probe-interval", "1", "--probe-tries", "2",
           "--probe-timeout", "5"]


def ruche_run(out, ranks, launcher_args, train_args, env):
    """ruche-run on the hosts; env's RUCHE_FAULT fires once (RUCHE_FAULT_MARK)."""
    shutil.rmtree(WORK / out, ignore_errors=True)
    mark = WORK / f"{out}.mark"
    mark.unlink(missing_ok=True)
    env = dict(env, RUCHE_FAULT_MARK=str(mark))
    return Job([RUCHE_RUN, "--hostfile", hostfile, "-np", str(ranks), *ELASTIC, *launcher_args,
                "--", RUCHE, "train", "--out", str(WORK / out), *train_args, "--resume", "auto"],
               env)


def lines_of(path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def shrink():
    trace = WORK / "trace"
    shutil.rmtree(trace, ignore_errors=True)
    trace.mkdir()
    args = flags(COMMON, max_steps=120)
    job = ruche_run("shrink", 3, ["--elastic", "--min-ranks", "2"], args,
                    {"RUCHE_FAULT": "hang_at_step:30@2", "RUCHE_TRACE_SAMPLES": str(trace)})
    try:
        held = job.wait_for(lambda: len(lines_of(trace / "samples-2.txt")) >= 30 and
                            (WORK / "shrink" / "ckpt" / "latest").exists(), 60)
        check(held, "3 hosts x 1 rank train and checkpoint; rank 2 is held at step 30")
        time.sleep(0.5)
        lose(2)
        rc = job.end(90)
    finally:
        job.kill()
    log = job.text()
    check(rc == 0, f"the job goes on without {host(2)} and finishes (ruche-run exit {rc})")
    m = re.search(r"resumed from \S+step-(\d+): step (\d+), epoch (\d+), (\d+) samples into it "
                  r"\(saved by 3 ranks", log)
    check(m is not None, "the restart resumed from a checkpoint of the 3-rank run")
    if rc != 0 or m is None:
        print(log[-6000:])
        return
    c, epoch, samples = int(m.group(2)), int(m.group(3)) - 1, int(m.group(4))
    print(f"      (resumed from step {c}, epoch {epoch + 1}, {samples} samples into it)")
    dropped = re.search(rf"ruche-run: elastic: host {host(2)} dropped \(did not answer 2 probes"
                        rf".*\): the job goes on with 2 ranks on {host(0)}, {host(1)}", log)
    check(dropped is not None, f"ruche-run says {host(2)} was dropped and 2 ranks go on")
    lr3, lr2 = 0.5 * 12 / 256, 0.5 * 8 / 256
    world = f"ruche-run: elastic: restarting from step {c} ("
    world_line = next((line for line in job.lines if line.startswith(world)), "")
    check(f"on 2 ranks (was 3): global batch 12 -> 8 (4 per rank), lr {lr3:g} -> {lr2:g} "
          "(--lr-scaling linear); the run is no longer bit-identical" in world_line,
          f"the new world's line: step, ranks, global batch, lr, not bit-identical ({world_line.strip()})")
    check("this run has 2 ranks x 1 thread: the resume continues at the same sample and step, "
          "but not bit-identically" in log and "batch 4 x 2 ranks x 1 accumulated = 8" in log
          and f"lr {lr2:g} (fixed, scaled linearly)" in log,
          "ruche train says the world size, global batch and lr changed")

    # Every training sample of the interrupted epoch once: the 3-rank batches before the
    # checkpoint and the 2-rank batches after it (the loader logs each batch it hands out).
    seen = []
    for r in range(3):
        for line in lines_of(trace / f"samples-{r}.txt"):
            head, idx = line.split(":")
            _, e, _, k, _, w = head.split()
            e, k, w = int(e), int(k), int(w)
            if e != epoch:
                continue
            if (w == 3 and k < samples // 12) or w == 2:
                seen += [int(i) for i in idx.split()]
    dup = len(seen) - len(set(seen))
    check(sorted(seen) == list(range(432)),
          f"epoch {epoch + 1}: every one of the 432 training samples trained on exactly once "
          f"({len(seen)} seen, {len(set(seen))} distinct, {dup} repeated)")
    firsts = [int(line.split()[3]) for r in range(2) for line in
              lines_of(trace / f"samples-{r}.txt") if line.startswith(f"epoch {epoch} ") and
              " world 2:" in line]
    check(firsts and min(firsts) == samples // 8,
          f"the 2-rank run starts the epoch at batch {samples // 8} (sample {samples})")

    # By hand: 3 ranks to step C, then resumed on 2 (the hosts of the elastic run).
    hosts("link", ID, "2", "up")
    shutil.rmtree(WORK / "by_hand", ignore_errors=True)
    first = on_hosts([MPIEXEC, *MPI_FLAGS, "--hostfile", hostfile, "-np", "3", RUCHE, "train",
                      "--out", str(WORK / "by_hand"), *flags(COMMON, max_steps=c)])
    second = on_hosts([MPIEXEC, *MPI_FLAGS, "-H", f"{host(0)}:1,{host(1)}:1", "-np", "2", RUCHE,
                       "train", "--out", str(WORK / "by_hand"), *args, "--resume", "auto"])
    check(first.returncode == 0 and second.returncode == 0,
          f"by hand: 3 ranks to step {c}, resumed on 2 ranks to 120")
    if first.returncode or second.returncode:
        print(first.stderr[-2000:], second.stdout[-2000:], second.stderr[-2000:])
        return
    check(same_bits(weights("shrink"), weights("by_hand")),
          "the elastic run's final weights equal the by-hand resume's, bit for bit")


def min_ranks():
    args = flags(COMMON, max_steps=400)
    job = ruche_run("minr", 2, ["--elastic", "--min-ranks", "2"], args,
                    {"RUCHE_FAULT": "hang_at_step:30@1"})
    latest = WORK / "minr" / "ckpt" / "latest"
    try:
        check(job.wait_for(latest.exists, 60), "2 hosts x 1 rank train and checkpoint")
        time.sleep(1.0)  # rank 1 reaches step 30 and is held there
        before = latest.read_text() if latest.exists() else ""
        lose(1)
        rc = job.end(90)
    finally:
        job.kill()
    said = [line for line in job.lines if "elastic:" in line]
    check(rc == 69, f"fewer than --min-ranks left: ruche-run exits 69 (exit {rc})")
    want = (f"ruche-run: elastic: host {host(1)} lost for good (did not answer 2 probes 1 s apart"
            f": ")
    check(len(said) == 1 and said[0].startswith(want) and
          "1 rank left, fewer than --min-ranks 2; stopping (exit 69); the last checkpoint, "
          in said[0] and "is intact" in said[0], f"one clear line ({said[0].strip() if said else ''})")
    if rc != 69:
        print(job.text()[-4000:])
    after = latest.read_text() if latest.exists() else ""
    inspect = subprocess.run([RUCHE, "inspect", str(WORK / "minr")], capture_output=True,
                             text=True)
    check(before != "" and after == before and inspect.returncode == 0,
          f"the last checkpoint ({after.strip()}) is intact: ruche inspect verifies it "
          f"(exit {inspect.returncode})")
    check(not leftovers(), f"no process left in the hosts ({leftovers()})")


def grow(with_grow):
    out = "grow" if with_grow else "nogrow"
    args = flags(COMMON, max_steps=100000, log_every=1000)
    job = ruche_run(out, 3, ["--elastic"] + (["--grow"] if with_grow else []), args,
                    {"RUCHE_FAULT": "hang_at_step:30@2"})
    latest = WORK / out / "ckpt" / "latest"
    try:
        check(job.wait_for(latest.exists, 60), "3 hosts x 1 rank train and checkpoint")
        time.sleep(1.0)
        lose(2)
        on_two = job.wait_for(lambda: job.text().count("x 2 ranks x 1 accumulated") == 1, 60)
        check(on_two and job.saw(f"elastic: host {host(2)} dropped"),
              f"{host(2)} lost: dropped, the job goes on with 2 ranks")
        hosts("link", ID, "2", "up")  # it comes back, mid-run: nothing changes yet
        step = latest.read_text()
        job.wait_for(lambda: latest.read_text() != step, 30)  # the 2-rank run checkpoints
        time.sleep(0.5)
        check(not job.saw("re-admitted"), "a host that comes back never joins mid-run")
        for pid in pids_in(1):  # host 1 crashes: the next restart
            os.kill(pid, signal.SIGKILL)
        restarted = job.wait_for(lambda: job.text().count("resumed from") >= 2 and
                                 job.text().count("solver:") >= 3, 60)
        check(restarted, "host 1's crash restarts the job")
        time.sleep(0.5)
        solver_lines = [line for line in job.lines if line.startswith("solver:")]
        ranks = re.search(r"x (\d+) ranks x", solver_lines[-1]).group(1) if restarted else "?"
        if with_grow:
            check(job.saw(f"ruche-run: elastic: host {host(2)} answers again: re-admitted "
                          f"(--grow); the job goes on with 3 ranks on {host(0)}, {host(1)}, "
                          f"{host(2)}") and job.saw("on 3 ranks (was 2): global batch 8 -> 12")
                  and ranks == "3",
                  f"--grow: {host(2)} is re-admitted at the next restart (ranks: {ranks})")
        else:
            check(not job.saw("re-admitted") and ranks == "2",
                  f"without --grow: {host(2)} stays out at the next restart (ranks: {ranks})")
        os.kill(job.p.pid, signal.SIGTERM)  # to ruche-run: checkpoint and stop
        rc = job.end(60)
        check(rc == 75, f"SIGTERM: the job checkpoints and stops (exit {rc})")
    finally:
        job.kill()
    check(not leftovers(), f"no process left in the hosts ({leftovers()})")


hostfile = up()
try:
    {"shrink": shrink, "min_ranks": min_ranks, "grow": lambda: grow(True),
     "no_grow": lambda: grow(False)}[CASE]()
finally:
    hosts("down", ID)
finish()
