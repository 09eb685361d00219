#!/usr/bin/env python3
"""ZeRO stage 1 (--zero 1) end to end under mpirun: each rank keeps the optimizer state of its
range of the flat buffer, gradients are reduce-scattered and parameters all-gathered. It must train
to the same parameters as plain data parallelism, and its checkpoints (the same logical state,
saved from the shards) must resume on another number of ranks, with or without --zero.

usage: zero.py RUCHE_BINARY MPIEXEC WORKDIR [CASE ...]   (cases: same, reshard)
"""
from dp_common import WORK, check, finish, flags, rel, train, want, weights, write_data, write_net

data = str(write_data(WORK / "data.npz", 600, 101))
net = str(write_net("net.prototxt"))
SOLVERS = {
    # Clipping low enough that it acts on most steps: the norm comes from the partial sums.
    "sgd": 'type: "sgd" base_lr: 0.05 momentum: 0.9 weight_decay: 0.0005 clip_grad_norm: 0.5\n',
    "adam": 'type: "adam" base_lr: 0.01 weight_decay: 0.0001 clip_grad_norm: 0.5\n',
}
for name, text in SOLVERS.items():
    (WORK / f"{name}.prototxt").write_text(text)
# A global batch of 48 on 1, 2 and 3 ranks; a fixed rate, so stopping at 8 changes nothing.
COMMON = {"--data": data, "--net": net, "--max-steps": "12", "--log-every": "4",
          "--val-fraction": "0.1", "--seed": "5", "--lr-policy": "fixed"}


def run(ranks, out, solver, zero, **more):
    args = flags(COMMON, solver=str(WORK / f"{solver}.prototxt"), batch_size=48 // ranks,
                 zero=zero, **more)
    return train(ranks, out, args)


if want("same"):
    for solver in SOLVERS:
        for n in (2, 3):
            plain = run(n, f"plain_{solver}_{n}", solver, 0, no_checkpoint=True)
            zero = run(n, f"zero_{solver}_{n}", solver, 1, no_checkpoint=True)
            ok = plain.returncode == 0 and zero.returncode == 0 and \
                f"ZeRO-1: optimizer state sharded over {n} ranks" in zero.stdout
            d = rel(weights(f"zero_{solver}_{n}"), weights(f"plain_{solver}_{n}")) if ok else 1
            check(ok and d < 1e-6, f"{solver}, {n} ranks: --zero 1 ends where plain data "
                                   f"parallelism does ({d:.1e} < 1e-6)")

if want("reshard"):
    # 8 steps with --zero 1 on n ranks, then on to 16 on m ranks (zero on m > 1, plain on 1),
    # against 16 uninterrupted steps of plain data parallelism on n ranks.
    for solver in SOLVERS:
        for n, m in ((2, 3), (3, 1)):
            out = f"reshard_{solver}_{n}to{m}"
            first = run(n, out, solver, 1, max_steps=8)
            cont = run(m, out, solver, 1 if m > 1 else 0, max_steps=16, resume="auto")
            whole = run(n, out + "_whole", solver, 0, max_steps=16, no_checkpoint=True)
            ok = first.returncode == 0 and cont.returncode == 0 and whole.returncode == 0 and \
                f"saved by {n} rank" in cont.stdout
            d = rel(weights(out), weights(out + "_whole")) if ok else 1
            check(ok and d < 1e-5, f"{solver}: --zero 1 on {n} ranks, resumed on {m}: the same "
                                   f"parameters as {n} plain ranks throughout ({d:.1e} < 1e-5)")

finish()
