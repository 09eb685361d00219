#!/usr/bin/env python3
"""A full disk during checkpoints, and --checkpoint-every-steps auto, end to end on 2 ranks
(docs/ARCHITECTURE.md: Checkpoints; Signals and exit codes).

usage: disk_full.py RUCHE_BINARY MPIEXEC WORKDIR [CASE ...]

  periodic  RUN/ckpt is a tmpfs (a mount namespace: `unshare -m`, root) nearly filled by a file;
            the periodic saves fail, each warned about loudly, training goes on; once the file
            is removed the next save succeeds, and the run ends bit-identical to one that never
            met a full disk
  final     RUN/ckpt is a tmpfs with room for two checkpoints: the third and later saves fail
            (warned), the previous checkpoint stays the latest and verifies, and the final save
            failing is exit 74, which launcher/ruche-run does not restart
  auto      --checkpoint-every-steps auto:5%: the measured cadence and its cost are in
            metrics.jsonl and the progress line, within the bound; with
            --checkpoint-every-minutes too it is a usage error (exit 2)

The tmpfs cases need root and `unshare -m`, else they are skipped (exit 77 when every case asked
for is skipped): a real full disk, not an injected error.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

from dp_common import (ENV, MPI_FLAGS, MPIEXEC, ONLY, RUCHE, WORK, check, finish, flags,
                       same_bits, train, want, weights, write_data, write_net)

RUCHE_RUN = str(pathlib.Path(__file__).resolve().parents[2] / "launcher" / "ruche-run")

data = str(write_data(WORK / "data.npz", 600, 101))
net = str(write_net("net.prototxt"))
solver = WORK / "solver.prototxt"
solver.write_text('type: "adam" base_lr: 0.01 weight_decay: 0.0001 lr_policy: "cosine"\n')
# 540 training samples in global batches of 32: 16 steps an epoch. A checkpoint of this net is
# two 21600-byte shards, a manifest, COMMIT: 14 pages of tmpfs.
COMMON = {"--data": data, "--net": net, "--max-steps": "40", "--log-every": "5",
          "--val-fraction": "0.1", "--seed": "11", "--solver": str(solver),
          "--batch-size": "16", "--checkpoint-every-steps": "6", "--keep-checkpoints": "3",
          "--no-tensorboard": True}


def can_mount():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=16k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


def in_tmpfs(ckpt, size, script, argv, timeout=300):
    """Runs argv inside a mount namespace where `ckpt` is a fresh tmpfs of `size`; `script` runs
    there first (sh, with $CKPT set). Returns the CompletedProcess."""
    ckpt.mkdir(parents=True, exist_ok=True)
    sh = f'mount -t tmpfs -o size={size} tmpfs "$CKPT" || exit 99\n{script}\n"$@"'
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", sh, "sh",
                           *argv], env=dict(ENV, CKPT=str(ckpt)), capture_output=True, text=True,
                          timeout=timeout)


mount_ok = can_mount()
skipped = []

if want("periodic"):
    if not mount_ok:
        skipped.append("periodic")
    else:
        args = flags(COMMON, max_steps=600)
        ref = train(2, "periodic_ref", args)
        out = WORK / "periodic"
        shutil.rmtree(out, ignore_errors=True)
        # The tmpfs is filled but for 2 pages; a watcher inside the namespace removes the filler
        # once rank 0 has warned twice, so that the saves after that succeed.
        script = ('head -c $((1024*1024 - 8192)) /dev/zero > "$CKPT/filler" || exit 98\n'
                  '( while [ "$(grep -c "NOT saved" "$ERR" 2>/dev/null)" -lt 2 ]; do sleep 0.005; '
                  'done; rm "$CKPT/filler" ) &')
        cmd = [MPIEXEC, *MPI_FLAGS, "-np", "2", RUCHE, "train", "--out", str(out), *args]
        err = WORK / "periodic.err"
        err.unlink(missing_ok=True)  # a past run's warnings would make the watcher free the disk
        p = in_tmpfs(out / "ckpt", "1m", script.replace("$ERR", str(err)),
                     ["sh", "-c", '"$@" 2> "$0"', str(err), *cmd])
        p.stderr = err.read_text() if err.exists() else p.stderr
        warned = p.stderr.count("NOT saved")
        check(p.returncode == 0 and warned >= 2 and "the disk is full" in p.stderr
              and "training goes on and the next checkpoint tries again" in p.stderr
              and "no space left on device" in p.stderr,
              f"periodic saves on a full disk warn ({warned} warnings) and training goes on "
              f"(exit {p.returncode})")
        committed = [l for l in p.stdout.splitlines() if l.startswith("checkpoint ")
                     and l.endswith("committed")]
        check(len(committed) >= 2 and "step-00000600 committed" in committed[-1],
              f"once there is room again the next saves commit ({len(committed)} committed, "
              "the last at step 600)")
        check(ref.returncode == 0 and p.returncode == 0
              and same_bits(weights("periodic"), weights("periodic_ref")),
              "the failed saves changed nothing: bit-identical to a run with room to spare")
        if p.returncode != 0:
            print(p.stdout[-2000:], p.stderr[-3000:])

if want("final"):
    if not mount_ok:
        skipped.append("final")
    else:
        out = WORK / "final"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [RUCHE_RUN, "-np", "2", "--max-restarts", "2", "--", RUCHE, "train", "--out",
               str(out), *flags(COMMON)]
        # 33 pages: the checkpoints of steps 6 and 12 (14 pages each) and `latest`, no third.
        p = in_tmpfs(out / "ckpt", "132k", "", cmd)
        warnings = [l for l in p.stderr.splitlines() if "WARNING" in l]
        check(p.returncode == 74 and "restart 1" not in p.stderr
              and "final checkpoint could not be written" in p.stderr
              and "not restarted" in p.stderr,
              f"the final save on a full disk: exit {p.returncode} (74), not restarted")
        check(len(warnings) >= 2 and all("step-00000012 is still the latest" in w
                                         for w in warnings),
              f"each save after step 12 warns and keeps step 12 ({len(warnings)} warnings)")
        # (The tmpfs goes with the namespace: final_inspect looks at it from inside.)
        check("checkpoint " + str(out / "ckpt" / "step-00000012") + " committed" in p.stdout
              and "step-00000018 committed" not in p.stdout,
              "steps 6 and 12 committed, nothing after")
        if p.returncode != 74:
            print(p.stdout[-2000:], p.stderr[-3000:])

if want("final") and mount_ok:
    # The same disk, then `ruche inspect` inside the namespace: step 12 is intact.
    out = WORK / "final_inspect"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [MPIEXEC, *MPI_FLAGS, "-np", "2", RUCHE, "train", "--out", str(out), *flags(COMMON)]
    p = in_tmpfs(out / "ckpt", "132k", "",
                 ["sh", "-c", '"$@"; code=$?; ls "$CKPT"; ' + RUCHE + ' inspect "$0" || exit 97; '
                  'exit $code', str(out), *cmd])
    check(p.returncode == 74 and "step-00000012" in p.stdout and "step-00000018" not in p.stdout
          and "ok" in p.stdout.lower(),
          f"after exit 74 the disk holds step 12, which verifies (exit {p.returncode}), and no "
          "half-written checkpoint")
    if p.returncode != 74:
        print(p.stdout[-3000:], p.stderr[-3000:])

if want("final") and mount_ok:
    # A stop signal on a full disk: the stop's save fails, the end of the run tries once more
    # (the same collectives on every rank) and fails: exit 74 even though ruche-run was signalled.
    out = WORK / "final_stop"
    shutil.rmtree(out, ignore_errors=True)
    err = WORK / "final_stop.err"
    cmd = [RUCHE_RUN, "-np", "2", "--", RUCHE, "train", "--out", str(out),
           *flags(COMMON, max_steps=4000)]
    script = ('"$@" 2> "$ERR" & pid=$!\n'
              '( while ! grep -q "NOT saved" "$ERR" 2>/dev/null; do sleep 0.01; done; '
              'kill -TERM $pid ) &\n'
              'wait $pid; exit $?').replace("$ERR", str(err))
    p = in_tmpfs(out / "ckpt", "132k", "", ["sh", "-c", script, "sh", *cmd])
    text = err.read_text() if err.exists() else ""
    check(p.returncode == 74 and "final checkpoint could not be written" in text
          and "restart 1" not in text,
          f"SIGTERM on a full disk: the stop's save fails, exit {p.returncode} (74)")
    if p.returncode != 74:
        print(p.stdout[-2000:], text[-3000:])

if want("auto"):
    p = train(2, "auto", flags(COMMON, max_steps=400, log_every=20,
                               checkpoint_every_steps="auto:5%"))
    records = [json.loads(l) for l in (WORK / "auto" / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["split"] == "train"]
    with_cadence = [r for r in train_records if "ckpt_every" in r]
    check(p.returncode == 0 and "checkpoint cadence (auto, within 5%): every" in p.stdout,
          f"auto:5%: rank 0 measures and says the cadence (exit {p.returncode})")
    check(len(with_cadence) >= len(train_records) - 2 and with_cadence
          and all(r["ckpt_every"] >= 1 and 0 < r["ckpt_cost_pct"] <= 5.0 + 1e-9
                  and r["ckpt_step_s"] > 0 and r["ckpt_save_s"] > 0 for r in with_cadence),
          f"metrics.jsonl records the cadence and its cost, within 5% "
          f"({[(r['ckpt_every'], round(r['ckpt_cost_pct'], 2)) for r in with_cadence[:4]]})")
    check(" ckpt/" in p.stdout, "the progress line shows it")
    both = train(1, "auto_both", flags(COMMON, checkpoint_every_steps="auto",
                                       checkpoint_every_minutes=5))
    check(both.returncode == 2 and "not both" in both.stderr,
          f"auto with --checkpoint-every-minutes: exit {both.returncode} (2)")

if skipped:
    print("skipped (needs root and unshare -m):", ", ".join(skipped))
    if ONLY and ONLY <= set(skipped):
        sys.exit(77)
finish()
