#!/usr/bin/env python3
"""Data parallelism across hosts on one machine (issue 16): 2 hosts made of network and UTS
namespaces by tests/support/netns_hosts.sh, TCP between them over veths and a bridge, mpirun (or
launcher/ruche-run) in a launcher namespace of its own starting each host's daemon through the
launch agent. One case per ctest (each under a minute on 2 cores), each with its own hosts:

  equivalence  2 hosts x 2 ranks (mpirun --hostfile, and ruche-run -H) == 1 process x the global
               batch (norm-relative < 1e-5), and the all-reduces crossed the veths
  nodes        the World sees the 2 hosts as nodes (RUCHE_FAKE_NODES unset; comm_test's World and
               Hierarchical cases), and --hierarchical-allreduce trains as the flat all-reduce
  link_cut     one host's link cut mid-run under ruche-run: the watchdog ends the job (exit 70)
               naming the stale heartbeats, ruche-run kills mpirun after --abort-grace, probes
               the hosts (a restart counted as failed while the link is down), resumes once it
               is back, and the final weights equal an uninterrupted run's bit for bit
  bad_input    a host that does not answer, more ranks than slots, a missing launch agent: one
               line, exit 2, nothing started; the hosts script leaves nothing behind

usage: multihost.py RUCHE_BINARY MPIEXEC WORKDIR CASE   (env RUCHE_COMM_TEST: comm_test, for nodes)
Needs root and `ip netns`: otherwise exits 77 (skipped) saying why.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

from dp_common import (ENV, MPI_FLAGS, MPIEXEC, ONLY, RUCHE, WORK, check, failures, finish, flags,
                       rel, same_bits, train, weights, write_data, write_net)

SRC = pathlib.Path(__file__).resolve().parents[2]
HOSTS = str(SRC / "tests" / "support" / "netns_hosts.sh")
RUCHE_RUN = str(SRC / "launcher" / "ruche-run")
CASES = {"equivalence": "mheq", "nodes": "mhnodes", "link_cut": "mhcut", "bad_input": "mhbad"}
if len(ONLY) != 1 or next(iter(ONLY)) not in CASES:
    sys.exit(f"usage: multihost.py RUCHE MPIEXEC WORKDIR CASE, CASE one of {', '.join(CASES)}")
CASE = next(iter(ONLY))
ID = CASES[CASE]  # the hosts' names and /24 are this test's own: ctest may run the cases together

if os.geteuid() != 0:
    print("skipped: network namespaces need root")
    sys.exit(77)
if shutil.which("ip") is None:
    print("skipped: no `ip` (iproute2)")
    sys.exit(77)

# Between hosts TCP only (ob1 over the tcp BTL; vader stays within a host); no pretend nodes.
NET_ENV = dict(ENV, OMPI_MCA_pml="ob1", OMPI_MCA_btl="tcp,vader,self")
NET_ENV.pop("RUCHE_FAKE_NODES", None)
NET_ENV.pop("OMPI_MCA_plm_rsh_agent", None)


def hosts(*args, timeout=60):
    return subprocess.run([HOSTS, *args], capture_output=True, text=True, timeout=timeout)


def up(n=2, rate=None):
    p = hosts("up", ID, str(n), *(["--rate", rate] if rate else []))
    if p.returncode == 77:
        print("skipped:", p.stderr.strip())
        sys.exit(77)
    if p.returncode != 0:
        print(p.stderr)
        sys.exit(f"netns_hosts.sh up {ID} {n} failed")
    hostfile = WORK / "hostfile"
    hostfile.write_text(hosts("hostfile", ID, "2").stdout)
    return str(hostfile)


def down():
    hosts("down", ID)


def leftovers():
    """Processes still inside this test's host namespaces."""
    left = []
    for h in hosts("hosts", ID).stdout.split():
        left += subprocess.run(["ip", "netns", "pids", h], capture_output=True,
                               text=True).stdout.split()
    return left


def veth_bytes():
    """Bytes through the bridge ends of the hosts' veths (both directions)."""
    total = 0
    for k in range(2):
        for d in ("rx", "tx"):
            p = subprocess.run(["ip", "netns", "exec", f"{ID}-ctl", "cat",
                                f"/sys/class/net/v{k}/statistics/{d}_bytes"],
                               capture_output=True, text=True)
            total += int(p.stdout.strip() or 0)
    return total


def on_hosts(cmd, env=None, timeout=120):
    """cmd run in the launcher namespace (mpirun, ruche-run); returns the result."""
    start = time.monotonic()
    p = subprocess.run([HOSTS, "run", ID, *cmd], env=dict(NET_ENV, **(env or {})),
                       capture_output=True, text=True, timeout=timeout)
    p.seconds = time.monotonic() - start
    return p


def train_on_hosts(out, args, hostfile, np=4, env=None):
    shutil.rmtree(WORK / out, ignore_errors=True)
    p = on_hosts([MPIEXEC, *MPI_FLAGS, "--hostfile", hostfile, "-np", str(np), RUCHE, "train",
                  "--out", str(WORK / out), *args], env=env)
    if p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-3000:], flush=True)
    return p


data = str(write_data(WORK / "data.npz", 600, 101))
net = str(write_net("net.prototxt"))
COMMON = {"--data": data, "--net": net, "--max-steps": "12", "--log-every": "4",
          "--val-fraction": "0.1", "--seed": "7", "--lr": "0.05", "--warmup-steps": "0"}


def equivalence(hostfile):
    one = train(1, "eq_1x48", flags(COMMON, batch_size=48))
    before = veth_bytes()
    two = train_on_hosts("eq_2x2x12", flags(COMMON, batch_size=12), hostfile)
    crossed = veth_bytes() - before
    check(one.returncode == 0 and two.returncode == 0,
          f"1 process and 2 hosts x 2 ranks train ({two.seconds:.1f} s across the hosts)")
    if one.returncode or two.returncode:
        return
    d = rel(weights("eq_2x2x12"), weights("eq_1x48"))
    check(d < 1e-5, f"2 hosts x 2 ranks x 12 == 1 process x 48 (norm-relative {d:.2e} < 1e-5)")
    # 12 steps, each at least one all-reduce of 3600 f32 gradients that must leave each host.
    check(crossed > 12 * 3600 * 4, f"the all-reduces crossed the veths ({crossed} bytes)")
    names = {r: dict(line.split(" ", 1) for line in
                     (WORK / "eq_2x2x12" / f"heartbeat-{r}").read_text().splitlines())["host"]
             for r in range(4)}
    check(names == {0: f"{ID}-h0", 1: f"{ID}-h0", 2: f"{ID}-h1", 3: f"{ID}-h1"},
          f"ranks 0, 1 ran on {ID}-h0 and 2, 3 on {ID}-h1, by their heartbeats ({names})")

    # The same through ruche-run -H and the launch agent (as users type it).
    shutil.rmtree(WORK / "eq_run", ignore_errors=True)
    run = on_hosts([RUCHE_RUN, "-np", "4", "-H", f"{ID}-h0:2,{ID}-h1:2", "--agent",
                    f"{HOSTS} agent", "--", RUCHE, "train", "--out", str(WORK / "eq_run"),
                    *flags(COMMON, batch_size=12)])
    check(run.returncode == 0, f"ruche-run -H {ID}-h0:2,{ID}-h1:2 trains (exit {run.returncode})")
    if run.returncode == 0:
        check(same_bits(weights("eq_run"), weights("eq_2x2x12")),
              "ruche-run -H == mpirun --hostfile, bit for bit")
    else:
        print(run.stderr[-3000:])


def nodes(hostfile):
    comm_test = os.environ.get("RUCHE_COMM_TEST") or str(pathlib.Path(RUCHE).parent / "tests" /
                                                         "comm_test")
    p = on_hosts([MPIEXEC, *MPI_FLAGS, "--hostfile", hostfile, "-np", "4", comm_test,
                  "--gtest_filter=World.*:Hierarchical.*"], env={"RUCHE_TEST_HOSTS": "2"})
    passed = p.stdout.count("[  PASSED  ]")
    check(p.returncode == 0 and passed == 4,
          "comm_test World.* and Hierarchical.* on 2 hosts x 2 ranks: 2 nodes of 2 by "
          f"MPI_Comm_split_type, named by their hosts; hierarchical == flat (exit {p.returncode})")
    if p.returncode != 0:
        print(p.stdout[-4000:], p.stderr[-2000:])
    flat = train_on_hosts("nodes_flat", flags(COMMON, batch_size=12), hostfile)
    hier = train_on_hosts("nodes_hier", flags(COMMON, batch_size=12, hierarchical_allreduce=True),
                          hostfile)
    check(flat.returncode == 0 and hier.returncode == 0,
          "flat and --hierarchical-allreduce train across the hosts")
    if flat.returncode == 0 and hier.returncode == 0:
        d = rel(weights("nodes_hier"), weights("nodes_flat"))
        check(d < 1e-5, f"--hierarchical-allreduce == flat across 2 hosts (norm-relative {d:.2e})")


class Job:
    """ruche-run in the launcher namespace, its output read as it comes."""

    def __init__(self, cmd):
        self.lines = []
        self.p = subprocess.Popen([HOSTS, "run", ID, *cmd], env=NET_ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)

    def saw(self, text):
        return any(text in line for line in self.lines)

    def wait_for(self, what, seconds):
        """Polls what() until true or `seconds` pass, or the job ends; returns what()."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.p.poll() is None and not what():
            time.sleep(0.05)
        return what()

    def kill(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def link_cut(hostfile):
    args = flags(COMMON, batch_size=12, max_steps=150, log_every=50, checkpoint_every_steps=10)
    ref = train_on_hosts("cut_ref", args, hostfile)
    check(ref.returncode == 0, f"the uninterrupted run on 2 hosts x 2 ranks ({ref.seconds:.1f} s)")
    if ref.returncode:
        return
    out = WORK / "cut"
    shutil.rmtree(out, ignore_errors=True)
    job = Job([RUCHE_RUN, "--hostfile", hostfile, "-np", "4", "--abort-grace", "3",
               "--probe-interval", "1", "--probe-tries", "2", "--probe-timeout", "5", "--", RUCHE,
               "train", "--out", str(out), *args, "--comm-timeout", "4", "--resume", "auto"])
    try:
        # Heartbeat rewrites, seen by their file's modification time, until the cut.
        beat = out / "heartbeat-0"
        writes = []
        latest = out / "ckpt" / "latest"

        def first_checkpoint():
            try:
                m = beat.stat().st_mtime_ns
                if not writes or writes[-1] != m:
                    writes.append(m)
            except FileNotFoundError:
                pass
            return latest.exists()

        check(job.wait_for(first_checkpoint, 60), "the job trains and checkpoints")
        job.wait_for(lambda: first_checkpoint() and False, 1.5)  # a second of heartbeats
        hosts("link", ID, "1", "down")
        cut = time.monotonic()
        aborted = job.wait_for(lambda: any(out.glob("abort-*")), 30)
        check(aborted, f"a rank aborts the job {time.monotonic() - cut:.1f} s after the cut "
              "(--comm-timeout 4), writing RUN/abort-<rank>")
        time.sleep(0.5)  # the ranks' watchdogs fire within moments of each other
        notes = {int(f.name.split("-")[1]): f.read_text() for f in out.glob("abort-*")
                 if f.name.split("-")[1].isdigit()}
        check(notes and all(n.startswith("code 70\n") and "watchdog" in n
                            for n in notes.values()),
              f"the abort notes of ranks {sorted(notes)} say code 70 and give the watchdog's line")
        # Each aborting rank names the ranks on the other side of the cut, whose heartbeats stopped.
        check(notes and all("stale heartbeats" in n and
                            all(f"rank {o} on {ID}-h{o // 2}" in n for o in range(4)
                                if o // 2 != r // 2) for r, n in notes.items()),
              "the watchdog names the ranks across the cut as stale heartbeats: "
              + next(iter(notes.values()), "").split("; ")[1] if notes else "no notes")
        gaps = [(b - a) / 1e9 for a, b in zip(writes, writes[1:])]
        check(len(writes) >= 2 and min(gaps) >= 0.9,
              f"heartbeat-0 rewritten at most once a second ({len(writes)} writes, smallest gap "
              f"{min(gaps) if gaps else 0:.2f} s)")
        # The link stays down until a restart has failed on it: no restart into a cut link.
        failed = job.wait_for(lambda: job.saw("restart 1 of 3 failed: host mhcut-h1 did not "
                                              "answer 2 probes"), 40)
        check(failed, "while the link is down, ruche-run's probes fail and count as a failed "
              "restart")
        hosts("link", ID, "1", "up")
        try:
            rc = job.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        job.reader.join(timeout=5)
        check(rc == 0, f"once the link is back the job resumes and finishes (ruche-run exit {rc})")
        check(job.saw("the job exited with code 70") and job.saw("restart 2 of 3 from the last "
                                                                "checkpoint"),
              "ruche-run saw exit 70 and restarted once the hosts answered")
        killed = job.saw("killing the job's process group")
        print(f"      (mpirun {'was killed after the grace' if killed else 'ended by itself'})")
        if rc == 0:
            check(same_bits(weights("cut"), weights("cut_ref")),
                  "the final weights equal the uninterrupted run's, bit for bit")
        if rc != 0 or failures:
            print("".join(job.lines)[-6000:])
    finally:
        job.kill()
    check(not leftovers(), f"no process left in the hosts ({leftovers()})")


def bad_input(hostfile):
    train_args = ["--", RUCHE, "train", *flags(COMMON, batch_size=12)]

    def one_line_exit_2(what, p, says, out=None):
        err = p.stderr.strip()
        ok = p.returncode == 2 and "\n" not in err and says in err and p.stdout == ""
        if out is not None:
            ok = ok and not (WORK / out).exists()
        check(ok and not leftovers(), f"{what}: exit {p.returncode}, one line, nothing started "
              f"({err[:160]})")

    hosts("link", ID, "1", "down")
    p = on_hosts([RUCHE_RUN, "--hostfile", hostfile, "-np", "4", *train_args[:3], "--out",
                  str(WORK / "bad_down"), *train_args[3:]])
    one_line_exit_2("a host whose link is down", p, "host mhbad-h1 does not answer", "bad_down")
    hosts("link", ID, "1", "up")
    nowhere = WORK / "hostfile-nowhere"
    nowhere.write_text(f"{ID}-h0 slots=2\n{ID}-h7 slots=2\n")
    p = on_hosts([RUCHE_RUN, "--hostfile", str(nowhere), "-np", "4", *train_args])
    one_line_exit_2("a host that does not exist", p, "host mhbad-h7 does not answer")
    p = on_hosts([RUCHE_RUN, "--hostfile", hostfile, "-np", "5", *train_args])
    one_line_exit_2("more ranks than slots", p, "-np 5 is more ranks than the 4 slots")
    p = on_hosts([RUCHE_RUN, "-H", f"{ID}-h0:2,{ID}-h1:2", "-np", "4", "--agent",
                  "/nonexistent/agent", *train_args])
    one_line_exit_2("--agent missing", p, "launch agent '/nonexistent/agent' (--agent)")
    p = on_hosts([RUCHE_RUN, "--hostfile", hostfile, "-np", "4", *train_args],
                 env={"OMPI_MCA_plm_rsh_agent": "/nonexistent/agent"})
    one_line_exit_2("OMPI_MCA_plm_rsh_agent missing", p, "(OMPI_MCA_plm_rsh_agent)")
    # A good line after all that still runs (the hosts were left usable).
    p = on_hosts([RUCHE_RUN, "--hostfile", hostfile, "-np", "4", "--", "hostname"])
    check(p.returncode == 0 and sorted(p.stdout.split()) == [f"{ID}-h0"] * 2 + [f"{ID}-h1"] * 2,
          f"ruche-run --hostfile runs 2 ranks in each host ({p.stdout.split()})")
    if p.returncode != 0:
        print(p.stderr[-2000:])

    # The hosts script: a rerun of `up` replaces what is there, `down` removes everything, twice.
    root_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    root_addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    check("10.213." not in root_addrs, "no private address of the hosts in the root namespace")
    again = hosts("up", ID, "3")
    names = hosts("hosts", ID).stdout.split()
    check(again.returncode == 0 and names == [f"{ID}-h{k}" for k in range(3)],
          f"up again replaces the hosts ({names})")
    check(hosts("exec", ID, "2", "hostname").stdout.strip() == f"{ID}-h2",
          "a host has its own host name")
    down()
    second = hosts("down", ID)
    gone = not any(n.startswith(f"{ID}-") for n in os.listdir("/run/netns")) if os.path.isdir(
        "/run/netns") else True
    gone = gone and not any(n.startswith(f"{ID}-") for n in os.listdir("/etc/netns")) if \
        os.path.isdir("/etc/netns") else gone
    after = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    check(gone and second.returncode == 0 and after == root_links,
          "down removes every namespace and file, twice; the root namespace's links unchanged")


hostfile = up(rate="16mbit" if CASE == "link_cut" else None)
try:
    {"equivalence": equivalence, "nodes": nodes, "link_cut": link_cut,
     "bad_input": bad_input}[CASE](hostfile)
finally:
    down()
finish()
