#!/usr/bin/env python3
"""Data-parallel training end to end: `mpirun -np N ruche train` on small nets and a small npz
dataset (docs/ARCHITECTURE.md, Tests: distributed equalities, faults injected with RUCHE_FAULT).

usage: data_parallel.py RUCHE_BINARY MPIEXEC WORKDIR [CASE ...]

Every rank holds bit-identical parameters after each epoch (the trainer checks it and fails
otherwise); here: N ranks x batch b equal 1 rank x batch N*b, bucket sizes do not change the
result, accumulation, frozen layers, uneven splits, sync-bn, faults, signals, a rank with a
different net, and --lr-scaling.
"""
import json
import shutil
import signal
import subprocess

import numpy as np

from dp_common import (ENV, MPIEXEC, MPI_FLAGS, RUCHE, WORK, check, failures, finish, flags,
                       rel, same_bits, train, want, weights, write_data, write_net)

data = str(write_data(WORK / "data.npz", 600, 101))
net = str(write_net("net.prototxt"))
COMMON = {"--data": data, "--net": net, "--max-steps": "12", "--log-every": "4",
          "--val-fraction": "0.1", "--seed": "7", "--lr": "0.05", "--warmup-steps": "0"}


if want("equivalence"):
    # The sampler's order does not depend on the world size, and the mean of N per-rank mean
    # gradients over b samples is the mean over N*b: the same training, up to summation order.
    one = train(1, "eq_1x48", flags(COMMON, batch_size="48"))
    two = train(2, "eq_2x24", flags(COMMON, batch_size="24"))
    three = train(3, "eq_3x16", flags(COMMON, batch_size="16"))
    check(one.returncode == 0 and two.returncode == 0 and three.returncode == 0,
          "1, 2 and 3 ranks train (every rank bit-identical after each epoch: checked in-run)")
    if not failures:
        d2, d3 = rel(weights("eq_2x24"), weights("eq_1x48")), rel(weights("eq_3x16"),
                                                                 weights("eq_1x48"))
        check(d2 < 1e-5, f"2 ranks x 24 == 1 rank x 48 (norm-relative {d2:.2e} < 1e-5)")
        check(d3 < 1e-5, f"3 ranks x 16 == 1 rank x 48 (norm-relative {d3:.2e} < 1e-5)")
        check("batch 24 x 2 ranks x 1 accumulated = 48" in two.stdout,
              "the solver line states the global batch")
        check(two.stdout.count("solver:") == 1, "only rank 0 prints")

if want("buckets"):
    # Tiny buckets (one tensor each) and one huge bucket sum the same numbers: bit-identical on 2
    # ranks (a sum of two is order-free); on 3, MPI may add in another order per bucket split.
    for ranks in (2, 3):
        tiny = train(ranks, f"bk{ranks}_tiny", flags(COMMON, batch_size="16", bucket_mb="0.000001"))
        huge = train(ranks, f"bk{ranks}_huge", flags(COMMON, batch_size="16", bucket_mb="1000"))
        check(tiny.returncode == 0 and huge.returncode == 0, f"{ranks} ranks, tiny and huge buckets")
        if tiny.returncode == 0 and huge.returncode == 0:
            a, b = weights(f"bk{ranks}_tiny"), weights(f"bk{ranks}_huge")
            if ranks == 2:
                check(same_bits(a, b), "2 ranks: bucket sizes give bit-identical weights")
            else:
                d = rel(a, b)
                check(d < 1e-6, f"3 ranks: bucket sizes agree (norm-relative {d:.2e} < 1e-6)")

if want("accumulate"):
    # 2 ranks x 12 x 2 micro-batches communicate once per step and equal 1 rank x 48.
    one = train(1, "acc_1x48", flags(COMMON, batch_size="48"))
    acc = train(2, "acc_2x12x2", flags(COMMON, batch_size="12", accumulate="2"))
    check(one.returncode == 0 and acc.returncode == 0, "accumulation on 2 ranks trains")
    if one.returncode == 0 and acc.returncode == 0:
        d = rel(weights("acc_2x12x2"), weights("acc_1x48"))
        check(d < 1e-5, f"2 ranks x 12 x accumulate 2 == 1 rank x 48 (norm-relative {d:.2e})")

if want("frozen"):
    frozen = str(write_net("frozen.prototxt", frozen=True))
    one = train(1, "fz_1x32", flags(COMMON, net=frozen, batch_size=32))
    two = train(2, "fz_2x16", flags(COMMON, net=frozen, batch_size=16))
    check(one.returncode == 0 and two.returncode == 0, "a frozen layer on 2 ranks trains")
    if one.returncode == 0 and two.returncode == 0:
        a, b = weights("fz_2x16"), weights("fz_1x32")
        check(rel(a, b) < 1e-5, f"frozen: 2 ranks x 16 == 1 rank x 32 ({rel(a, b):.2e})")
        init = train(1, "fz_init", flags(COMMON, net=frozen, batch_size=32, max_steps=1, lr=0))
        check(init.returncode == 0 and np.array_equal(weights("fz_init")["conv1.weight"],
                                                      a["conv1.weight"]),
              "the frozen layer kept its initial weights")

if want("uneven"):
    # 101 test samples over 3 ranks (34, 34, 33) and 540 training samples in batches that do not
    # divide them: no hang, every test sample counted once, the same report as one process.
    run = train(3, "uneven", flags(COMMON, batch_size="7"))
    check(run.returncode == 0, "3 ranks with uneven shards train")
    if run.returncode == 0:
        report = json.loads((WORK / "uneven" / "eval-test.json").read_text())
        check(report["samples"] == 101, f"test samples counted once ({report['samples']} == 101)")
        alone = subprocess.run([RUCHE, "eval", "--weights", str(WORK / "uneven" / "model.npz"),
                                "--data", data, "--json", str(WORK / "uneven_eval.json")],
                               env=ENV, capture_output=True, text=True)
        ref = json.loads((WORK / "uneven_eval.json").read_text()) if alone.returncode == 0 else {}
        check(ref.get("confusion_matrix") == report["confusion_matrix"]
              and abs(ref.get("loss", 0) - report["loss"]) < 1e-5,
              "the 3-rank test report equals one process's `ruche eval` (confusion, loss)")

if want("sync_bn"):
    bn = str(write_net("bn.prototxt", bn=True))
    one = train(1, "bn_1x32", flags(COMMON, net=bn, batch_size=32))
    sync = train(2, "bn_2x16_sync", flags(COMMON, net=bn, batch_size=16, sync_bn=True))
    local = train(2, "bn_2x16", flags(COMMON, net=bn, batch_size=16))
    check(one.returncode == 0 and sync.returncode == 0 and local.returncode == 0,
          "batch norm on 2 ranks trains, with and without --sync-bn")
    if not failures:
        ref = weights("bn_1x32")
        d_sync, d_local = rel(weights("bn_2x16_sync"), ref), rel(weights("bn_2x16"), ref)
        check(d_sync < 1e-5, f"--sync-bn: 2 ranks x 16 == 1 rank x 32 ({d_sync:.2e} < 1e-5)")
        check(d_local > 1e-4, f"without --sync-bn they differ ({d_local:.2e} > 1e-4)")

if want("faults"):
    # A rank that fails ends the job with its reason; nothing waits for it.
    for fault, says in (("throw_at_step:3@1", "rank 1: internal error: RUCHE_FAULT"),
                        ("crash_at_step:3@1", "RUCHE_FAULT injected at step 3")):
        run = train(2, "fault", flags(COMMON, batch_size="16", max_steps="200"),
                    env={"RUCHE_FAULT": fault}, timeout=120)
        check(run.returncode not in (0, 2, 3, 75, 130),
              f"{fault}: the job fails (exit {run.returncode})")
        check(run.returncode != 0 and says in run.stderr and run.seconds < 60,
              f"{fault}: ended in {run.seconds:.0f} s saying '{says}'")

if want("watchdog"):
    # A rank stuck in compute: the others' next collective outlives --comm-timeout and the
    # watchdog ends the job, naming the rank and the collective.
    run = train(2, "hang", flags(COMMON, batch_size=16, max_steps=200, comm_timeout=3),
                env={"RUCHE_FAULT": "hang_at_step:3@1"}, timeout=120)
    check(run.returncode not in (0, 2, 3, 75, 130) and "watchdog" in run.stderr
          and "rank 0" in run.stderr and run.seconds < 60,
          f"a hung rank: the watchdog ends the job in {run.seconds:.0f} s (exit {run.returncode})")

if want("compression"):
    f32 = train(2, "gc_f32", flags(COMMON, batch_size=16))
    for kind in ("fp16", "bf16"):
        run = train(2, f"gc_{kind}", flags(COMMON, batch_size=16, grad_compression=kind))
        ok = f32.returncode == 0 and run.returncode == 0
        d = rel(weights(f"gc_{kind}"), weights("gc_f32")) if ok else 1
        # 16-bit gradients change the weights by about their rounding (2^-11, 2^-8) per step.
        check(ok and 0 < d < 2e-2, f"--grad-compression {kind}: trains, close to fp32 ({d:.1e})")

if want("timeline"):
    run = train(2, "tl", flags(COMMON, batch_size=16, max_steps=5, timeline=True))
    ok = run.returncode == 0 and (WORK / "tl" / "timeline.json").exists()
    events = json.loads((WORK / "tl" / "timeline.json").read_text())["traceEvents"] if ok else []
    kinds = {(e["pid"], e.get("cat")) for e in events}
    check(ok and all((r, c) in kinds for r in (0, 1)
                     for c in ("forward", "backward", "allreduce", "comm_wait", "optimizer")),
          "--timeline: a Chrome trace of both ranks with layers, all-reduces, waits, optimizer")

if want("mismatch"):
    # One rank given another batch size: a clear error naming it, not a hang.
    shutil.rmtree(WORK / "mm", ignore_errors=True)
    cmd = [MPIEXEC, *MPI_FLAGS, "-np", "1", RUCHE, "train", "--out", str(WORK / "mm"),
           *flags(COMMON, batch_size=16), ":", "-np", "1", RUCHE, "train", "--out", str(WORK / "mm"),
           *flags(COMMON, batch_size=8)]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    check(p.returncode != 0 and "rank 1 built a different net or solver than rank 0" in p.stderr,
          f"a rank with another solver is named (exit {p.returncode})")

if want("signal"):
    # SIGUSR1 to mpirun reaches every rank; they stop after the same step, save, and exit 75.
    shutil.rmtree(WORK / "sig", ignore_errors=True)
    cmd = [MPIEXEC, *MPI_FLAGS, "-np", "2", RUCHE, "train", "--out", str(WORK / "sig"),
           *flags(COMMON, batch_size=16, max_steps=100000, log_every=1)]
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("epoch") and "step" in line:  # a progress line: training runs
            p.send_signal(signal.SIGUSR1)
            break
    out, err = p.communicate(timeout=120)
    check(p.returncode == 75 and (WORK / "sig" / "model.npz").exists(),
          f"SIGUSR1: exit {p.returncode} (75) with the weights saved")
    if p.returncode != 75:
        print(err[-1500:])

if want("lr_scaling"):
    run = train(2, "lrs", flags(COMMON, batch_size="64", lr_scaling="linear", max_steps="1"))
    check(run.returncode == 0 and "solver: sgd lr 0.025 " in run.stdout,
          "--lr-scaling linear: 0.05 x (64 x 2 / 256) = 0.025")

finish()
