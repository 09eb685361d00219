#!/usr/bin/env python3
"""Sharded checkpoints, exact resume and surviving failures, end to end under mpirun and
launcher/ruche-run (docs/ARCHITECTURE.md: Checkpoints; Signals and exit codes; faults from
RUCHE_FAULT).

usage: checkpoint.py RUCHE_BINARY MPIEXEC WORKDIR [CASE ...]

The reference is an uninterrupted run; a run that crashes (injected, or a real kill -9), is
stopped by a signal, or loses a checkpoint mid-write, and resumes, must end with bit-identical
weights. Resuming on another number of ranks continues from the same state.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import time

from dp_common import (ENV, RUCHE, WORK, check, finish, flags, rel, same_bits, train, want,
                       weights, write_data, write_net)

RUCHE_RUN = str(pathlib.Path(__file__).resolve().parents[2] / "launcher" / "ruche-run")

data = str(write_data(WORK / "data.npz", 600, 101))
net = str(write_net("net.prototxt"))
# Adam (its step count drives the bias correction) under a cosine schedule over the run.
solver = WORK / "solver.prototxt"
solver.write_text('type: "adam" base_lr: 0.01 weight_decay: 0.0001 lr_policy: "cosine"\n')
# 540 training samples in global batches of 32: 16 steps an epoch; 40 steps cross two epochs.
COMMON = {"--data": data, "--net": net, "--max-steps": "40", "--log-every": "5",
          "--val-fraction": "0.1", "--seed": "11", "--solver": str(solver),
          "--checkpoint-every-steps": "6", "--keep-checkpoints": "3"}


def launch(out, ranks, args, env=None, wait=True, fresh=True):
    """ruche-run -np N -- ruche train --out WORK/out ... (restarts on failure); fresh: from an
    empty run directory, with the fault's once-only mark cleared."""
    if fresh:
        shutil.rmtree(WORK / out, ignore_errors=True)
        mark = (env or {}).get("RUCHE_FAULT_MARK")
        if mark:
            pathlib.Path(mark).unlink(missing_ok=True)
    cmd = [RUCHE_RUN, "-np", str(ranks), "--max-restarts", "2", "--", RUCHE, "train", "--out",
           str(WORK / out), *args]
    p = subprocess.Popen(cmd, env=dict(ENV, **(env or {})), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    if not wait:
        return p
    p.out, p.err = p.communicate(timeout=300)
    return p


def latest(out):
    path = WORK / out / "ckpt" / "latest"
    return path.read_text().strip() if path.exists() else ""


def wait_for_checkpoint(out, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not latest(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(latest(out))


def rank_pids(out):
    """The ruche processes (not mpirun, not ruche-run) training into WORK/out."""
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            exe = os.readlink(entry / "exe")
        except (OSError, ValueError):
            continue
        if exe == os.path.realpath(RUCHE) and str(WORK / out).encode() in cmd:
            pids.append(int(entry.name))
    return sorted(pids)


reference = train(2, "ref", flags(COMMON, batch_size=16))
check(reference.returncode == 0 and latest("ref") == "step-00000040",
      f"an uninterrupted 2-rank run commits its last checkpoint ({latest('ref')})")
ref = weights("ref")

if want("crash"):
    # A rank crashes at step 15 (after the step-12 checkpoint): ruche-run restarts the job with
    # --resume auto, which continues from step 12 and ends bit-identical to the reference.
    p = launch("crash", 2, flags(COMMON, batch_size=16),
               env={"RUCHE_FAULT": "crash_at_step:15@1",
                    "RUCHE_FAULT_MARK": str(WORK / "crash.mark")})
    check(p.returncode == 0 and "restart 1 of 2" in p.err and "resumed from" in p.out
          and "step-00000012" in p.out,
          f"a crashed rank: ruche-run restarts from step 12 (exit {p.returncode})")
    check(p.returncode == 0 and same_bits(weights("crash"), ref),
          "the resumed run ends bit-identical to the uninterrupted one")

def long_reference():
    """An uninterrupted 2-rank run of 400 steps (trained once)."""
    if not (WORK / "long_ref" / "model.npz").exists():
        train(2, "long_ref", flags(COMMON, batch_size=16, max_steps=400))
    return weights("long_ref")


if want("kill9"):
    # A real kill -9 of one rank once a checkpoint exists.
    p = launch("kill9", 2, flags(COMMON, batch_size=16, max_steps=400), wait=False)
    ok = wait_for_checkpoint("kill9", p)
    pids = rank_pids("kill9")
    if ok and pids:
        os.kill(pids[-1], signal.SIGKILL)
    out, err = p.communicate(timeout=300)
    check(ok and len(pids) == 2 and p.returncode == 0 and "restart 1 of 2" in err,
          f"kill -9 of a rank: restarted and finished (exit {p.returncode}, pids {pids})")
    check(p.returncode == 0 and same_bits(weights("kill9"), long_reference()),
          "after kill -9 and resume: bit-identical to the uninterrupted run")

if want("during_write"):
    # Rank 1 dies after writing its shard of step 18, before COMMIT: that checkpoint does not
    # exist; the restart resumes from the one before (the end of the first epoch, step 16).
    p = launch("midwrite", 2, flags(COMMON, batch_size=16),
               env={"RUCHE_FAULT": "crash_after_shard_write:18@1",
                    "RUCHE_FAULT_MARK": str(WORK / "midwrite.mark")})
    check(p.returncode == 0 and "step-00000016" in p.out.split("resumed from", 1)[-1][:200],
          "a crash between shard and COMMIT: the previous checkpoint (step 16) is used")
    check(p.returncode == 0 and same_bits(weights("midwrite"), ref),
          "and the run still ends bit-identical")

if want("in_writer"):
    # Rank 1 dies inside its writer thread while saving step 24: resume from 18, bit-identical.
    p = launch("inwriter", 2, flags(COMMON, batch_size=16),
               env={"RUCHE_FAULT": "crash_in_writer:24@1",
                    "RUCHE_FAULT_MARK": str(WORK / "inwriter.mark")})
    check(p.returncode == 0 and "step-00000018" in p.out.split("resumed from", 1)[-1][:200]
          and same_bits(weights("inwriter"), ref),
          "a crash inside the writer thread: resumed from step 18, bit-identical")

if want("corrupt"):
    # Damage the newest checkpoint of a finished run: --resume auto falls back to the one
    # before and says why; --resume DIR names the file and what is wrong (exit 2).
    for damage in ("flip", "truncate", "delete"):
        out = f"corrupt_{damage}"
        shutil.rmtree(WORK / out, ignore_errors=True)
        shutil.copytree(WORK / "ref", WORK / out)
        newest = WORK / out / "ckpt" / latest(out)
        shard = newest / "shard-00001-of-00002.bin"
        if damage == "flip":
            b = bytearray(shard.read_bytes())
            b[len(b) // 2] ^= 0x40
            shard.write_bytes(bytes(b))
        elif damage == "truncate":
            shard.write_bytes(shard.read_bytes()[:100])
        else:
            shard.unlink()
        direct = train(2, out + "_direct", flags(COMMON, batch_size=16, resume=str(newest)))
        says = {"flip": "crc32c", "truncate": "truncated", "delete": "shard-00001-of-00002.bin"}
        check(direct.returncode == 2 and "shard-00001-of-00002.bin" in direct.stderr
              and says[damage] in direct.stderr,
              f"{damage}: --resume DIR is a clear error naming the shard (exit {direct.returncode})")
        auto = train(2, out, flags(COMMON, batch_size=16, max_steps=44, resume="auto"))
        check(auto.returncode == 0 and "skipping" in auto.stderr
              and "resumed from" in auto.stdout and "step-00000036" in auto.stdout,
              f"{damage}: --resume auto falls back to the previous checkpoint (step 36)")

if want("wrong_net"):
    other = str(write_net("bn_net.prototxt", bn=True))
    p = train(2, "wrong", flags(COMMON, net=other, batch_size=16,
                                resume=str(WORK / "ref" / "ckpt" / latest("ref"))))
    check(p.returncode == 2 and "another net" in p.stderr,
          f"a checkpoint of another net is refused (exit {p.returncode})")

if want("reshard"):
    # The same global batch of 48 on 2, 1 and 3 ranks: 8 steps on N ranks, then on to 16 on M
    # (a fixed learning rate, so that stopping at 8 does not change the schedule).
    for n, m in ((2, 1), (1, 3), (3, 2)):
        out = f"reshard_{n}to{m}"
        shutil.rmtree(WORK / out, ignore_errors=True)
        first = train(n, out, flags(COMMON, batch_size=48 // n, max_steps=8, lr_policy="fixed"))
        again = train(m, out, flags(COMMON, batch_size=48 // m, max_steps=8, resume="auto",
                                           lr_policy="fixed"))
        same = first.returncode == 0 and again.returncode == 0 and "saved by %d rank" % n in \
            again.stdout
        check(same, f"{n} -> {m} ranks: resumed (saved by {n})")
        cont = train(m, out, flags(COMMON, batch_size=48 // m, max_steps=16, resume="auto",
                                          lr_policy="fixed"))
        whole = train(n, out + "_whole", flags(COMMON, batch_size=48 // n, max_steps=16,
                                                      lr_policy="fixed"))
        d = rel(weights(out), weights(out + "_whole")) if cont.returncode == 0 else 1
        check(cont.returncode == 0 and d < 1e-5,
              f"{n} -> {m} ranks: parameters and optimizer state carry on ({d:.1e} < 1e-5 "
              f"against {n} ranks throughout)")

if want("signals"):
    # SIGTERM to ruche-run: a committed checkpoint and exit 75; the next invocation continues.
    args = flags(COMMON, batch_size=16, max_steps=400, resume="auto", log_every=1)
    p = launch("sigterm", 2, args, wait=False)
    wait_for_checkpoint("sigterm", p)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    saved = latest("sigterm")
    check(p.returncode == 75 and saved != "" and "restart" not in err,
          f"SIGTERM to ruche-run: exit {p.returncode} (75) with {saved} committed, no restart")
    again = launch("sigterm", 2, args, fresh=False)
    check(again.returncode == 0 and "resumed from" in again.out
          and same_bits(weights("sigterm"), long_reference()),
          "the next invocation resumes and ends bit-identical to an uninterrupted run")

    # SIGUSR1 to the ranks (the cluster's pre-emption): checkpoint, exit 75, and ruche-run,
    # not signalled itself, restarts with --resume auto.
    p = launch("sigusr1", 2, args, wait=False)
    wait_for_checkpoint("sigusr1", p)
    for pid in rank_pids("sigusr1"):
        os.kill(pid, signal.SIGUSR1)
    out, err = p.communicate(timeout=300)
    check(p.returncode == 0 and "exited with code 75" in err and "resumed from" in out,
          f"SIGUSR1 to the ranks: checkpoint, restart, finished (exit {p.returncode})")

    # Ctrl-C to ruche-run: exit 130, no restart.
    p = launch("sigint", 2, args, wait=False)
    wait_for_checkpoint("sigint", p)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    check(p.returncode == 130 and "restart 1" not in err,
          f"Ctrl-C to ruche-run: exit {p.returncode} (130), no restart")
    if "restart 1" in err:
        print(err[-2000:])

finish()
