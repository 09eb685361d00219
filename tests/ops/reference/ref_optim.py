"""PyTorch references for engine/optim (tests/optim/*_test.cc).

optim_<name>: a small net's parameters (a weight, a bias, batch-norm gamma and beta, a second
weight, then a frozen weight) stepped STEPS times by torch.optim with fixed per-step gradients and
learning rates. Per-parameter lr_mult / decay_mult / no_decay_bn_bias become torch param groups
(lr * lr_mult, weight_decay * decay). L1 decay (not in torch) is added to the gradient by hand.
LARS has no torch.optim class: its reference is computed here in float64 numpy from the formula
in engine/optim/optimizer.h.
Arrays: solver (the SolverParameter as prototxt bytes), counts, roles (ParamRole codes), lr_mult,
decay_mult, frozen (per tensor); params0 [N] (trainable, then frozen), grads [STEPS, trainable],
lrs [STEPS], expected [STEPS, N] (the parameters after each step).

clip_*: torch.nn.utils.clip_grad_norm_ over three gradient tensors.
lr_*: learning rates of torch.optim.lr_scheduler for LR_STEPS steps.
"""
import math

import numpy as np
import torch

STEPS = 5
LR_STEPS = 20

WEIGHT, BIAS, NORM_WEIGHT, NORM_BIAS = 0, 1, 2, 3
# (shape, role, lr_mult, decay_mult, frozen)
PLAIN = [((5, 3), WEIGHT, 1, 1, False), ((5,), BIAS, 1, 1, False),
         ((5,), NORM_WEIGHT, 1, 1, False), ((5,), NORM_BIAS, 1, 1, False),
         ((4, 4), WEIGHT, 1, 1, False), ((3, 2), WEIGHT, 1, 1, True)]
# Caffe's classic multipliers (bias: lr x2, no decay), a half-decayed weight, a frozen tail.
GROUPS = [((5, 3), WEIGHT, 1, 1, False), ((5,), BIAS, 2, 0, False),
          ((5,), NORM_WEIGHT, 1, 1, False), ((5,), NORM_BIAS, 1, 1, False),
          ((4, 4), WEIGHT, 0.5, 0.5, False), ((3, 2), WEIGHT, 1, 1, True)]


def prototxt(solver):
    parts = []
    for key, value in solver.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, str):
            value = f'"{value}"'
        parts.append(f"{key}: {value}")
    return np.frombuffer(" ".join(parts).encode(), dtype=np.uint8)


def effective_decay(layout, solver):
    no_decay = solver.get("no_decay_bn_bias", False)
    return [0.0 if no_decay and role != WEIGHT else float(dm) for _, role, _, dm, _ in layout]


def torch_optimizer(solver, params, lr_mults, decays):
    wd = solver.get("weight_decay", 0.0)
    groups = [{"params": [p], "lr": 1.0, "weight_decay": wd * d} for p, d in zip(params, decays)]
    kind = solver["type"]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=1.0, momentum=solver.get("momentum", 0.9),
                               nesterov=solver.get("nesterov", False))
    if kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        return cls(groups, lr=1.0, betas=(solver.get("beta1", 0.9), solver.get("beta2", 0.999)),
                   eps=solver.get("epsilon", 1e-8))
    if kind == "rmsprop":
        return torch.optim.RMSprop(groups, lr=1.0, alpha=solver.get("rms_alpha", 0.99),
                                   eps=solver.get("epsilon", 1e-8),
                                   momentum=solver.get("momentum", 0.0))
    raise ValueError(kind)


def run_torch(solver, layout, init, grads, lrs):
    trainable = [i for i, entry in enumerate(layout) if not entry[4]]
    params = [torch.tensor(init[i], dtype=torch.float32) for i in trainable]
    decays = effective_decay(layout, solver)
    lr_mults = [float(layout[i][2]) for i in trainable]
    decays = [decays[i] for i in trainable]
    opt = torch_optimizer(solver, params, lr_mults, decays)
    l1 = solver.get("l1_decay", 0.0)
    history = []
    for step in range(STEPS):
        for group, p, g, lm, d in zip(opt.param_groups, params, grads[step], lr_mults, decays):
            group["lr"] = float(lrs[step]) * lm
            p.grad = torch.tensor(g, dtype=torch.float32) + l1 * d * torch.sign(p.detach())
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


def run_lars(solver, layout, init, grads, lrs):
    """LARS in float64: d = (g + wd p + l1 sign p) * ratio, then SGD with momentum."""
    trainable = [i for i, entry in enumerate(layout) if not entry[4]]
    params = [init[i].astype(np.float64) for i in trainable]
    bufs = [np.zeros_like(p) for p in params]
    decays = effective_decay(layout, solver)
    mu, trust = solver["momentum"], solver["lars_trust"]
    wd, l1 = solver.get("weight_decay", 0.0), solver.get("l1_decay", 0.0)
    nesterov = solver.get("nesterov", False)
    history = []
    for step in range(STEPS):
        for k, i in enumerate(trainable):
            _, role, lr_mult, _, _ = layout[i]
            p, g = params[k], grads[step][k].astype(np.float64)
            w = wd * decays[i]
            p_norm, g_norm = np.linalg.norm(p), np.linalg.norm(g)
            ratio = 1.0
            if role == WEIGHT and p_norm > 0 and g_norm > 0:
                ratio = trust * p_norm / (g_norm + w * p_norm)
            d = (g + w * p + l1 * decays[i] * np.sign(p)) * ratio
            bufs[k] = mu * bufs[k] + d
            d = d + mu * bufs[k] if nesterov else bufs[k]
            params[k] = p - float(lrs[step]) * lr_mult * d
        history.append([p.copy() for p in params])
    return history


def optim_case(solver, layout, gen, lars=False):
    init = [torch.randn(shape, generator=gen).numpy() * 0.5 for shape, *_ in layout]
    trainable = [i for i, entry in enumerate(layout) if not entry[4]]
    grads = []
    for step in range(STEPS):
        per = [torch.randn(layout[i][0], generator=gen).numpy() * (0.1 + 0.2 * k)
               for k, i in enumerate(trainable)]
        if step == 1:
            per[-1] = np.zeros_like(per[-1])  # a zero gradient (LARS: ratio 1)
        grads.append(per)
    lrs = np.array([solver["base_lr"] * f for f in (1.0, 0.8, 1.2, 0.5, 0.9)])
    history = (run_lars if lars else run_torch)(solver, layout, init, grads, lrs)
    frozen = [init[i].reshape(-1) for i, entry in enumerate(layout) if entry[4]]
    expected = np.stack([np.concatenate([p.reshape(-1) for p in h] + frozen) for h in history])
    return {
        "solver": prototxt(solver),
        "counts": np.array([int(np.prod(s)) for s, *_ in layout], dtype=np.int64),
        "roles": np.array([e[1] for e in layout], dtype=np.int32),
        "lr_mult": np.array([e[2] for e in layout], dtype=np.float32),
        "decay_mult": np.array([e[3] for e in layout], dtype=np.float32),
        "frozen": np.array([e[4] for e in layout], dtype=np.uint8),
        "params0": np.concatenate([init[i].reshape(-1) for i in trainable] + frozen),
        "grads": np.stack([np.concatenate([g.reshape(-1) for g in per]) for per in grads]),
        "lrs": lrs,
        "expected": expected,
    }


OPTIM_CASES = [
    ("sgd", {"type": "sgd", "base_lr": 0.1, "momentum": 0.0}, PLAIN),
    ("sgd_momentum", {"type": "sgd", "base_lr": 0.1, "momentum": 0.9}, PLAIN),
    ("sgd_nesterov", {"type": "sgd", "base_lr": 0.1, "momentum": 0.9, "nesterov": True}, PLAIN),
    ("sgd_decay", {"type": "sgd", "base_lr": 0.1, "momentum": 0.9, "weight_decay": 0.05,
                   "l1_decay": 0.02}, PLAIN),
    ("adam", {"type": "adam", "base_lr": 0.01}, PLAIN),
    ("adam_decay", {"type": "adam", "base_lr": 0.01, "weight_decay": 0.05, "beta1": 0.8,
                    "beta2": 0.99, "epsilon": 1e-6}, PLAIN),
    ("adamw", {"type": "adamw", "base_lr": 0.01, "weight_decay": 0.1}, PLAIN),
    ("rmsprop", {"type": "rmsprop", "base_lr": 0.01}, PLAIN),
    ("rmsprop_momentum", {"type": "rmsprop", "base_lr": 0.01, "momentum": 0.9,
                          "weight_decay": 0.05, "rms_alpha": 0.9}, PLAIN),
    ("groups_sgd", {"type": "sgd", "base_lr": 0.1, "momentum": 0.9, "weight_decay": 0.05,
                    "no_decay_bn_bias": True}, GROUPS),
    ("groups_adamw", {"type": "adamw", "base_lr": 0.01, "weight_decay": 0.1,
                      "no_decay_bn_bias": True}, GROUPS),
    ("lars", {"type": "lars", "base_lr": 0.1, "momentum": 0.9, "weight_decay": 0.01,
              "lars_trust": 0.5}, PLAIN),
    ("lars_groups", {"type": "lars", "base_lr": 0.1, "momentum": 0.9, "nesterov": True,
                     "weight_decay": 0.01, "l1_decay": 0.001, "lars_trust": 0.5,
                     "no_decay_bn_bias": True}, GROUPS),
]


def clip_cases(gen):
    grads = [torch.randn(shape, generator=gen) for shape in ((6, 4), (4,), (3, 3, 2))]
    flat = torch.cat([g.reshape(-1) for g in grads])
    for name, max_norm in (("clip_grad_norm", 1.5), ("clip_grad_norm_noop", 100.0)):
        params = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm)
        yield name, {
            "grads": flat, "max_norm": np.array([max_norm]), "total_norm": total.reshape(1),
            "clipped": torch.cat([p.grad.reshape(-1) for p in params])}


def lr_cases():
    sched = torch.optim.lr_scheduler
    base = 0.4
    cases = [
        ("step", {"lr_policy": "step", "gamma": 0.5, "stepsize": 3},
         lambda o: sched.StepLR(o, step_size=3, gamma=0.5)),
        ("multistep", {"lr_policy": "multistep", "gamma": 0.3, "stepvalue": [4, 9, 15]},
         lambda o: sched.MultiStepLR(o, milestones=[4, 9, 15], gamma=0.3)),
        ("exp", {"lr_policy": "exp", "gamma": 0.9},
         lambda o: sched.ExponentialLR(o, gamma=0.9)),
        ("cosine", {"lr_policy": "cosine", "min_lr": 0.001},
         lambda o: sched.CosineAnnealingLR(o, T_max=LR_STEPS, eta_min=0.001)),
        ("poly", {"lr_policy": "poly", "power": 2.0},
         lambda o: sched.PolynomialLR(o, total_iters=LR_STEPS, power=2.0)),
    ]
    for name, fields, make in cases:
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=base)
        s = make(opt)
        lrs = []
        for _ in range(LR_STEPS + 1):  # the last one is at total_steps: the floor
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            s.step()
        text = " ".join(f"{k}: {v}" if not isinstance(v, str) else f'{k}: "{v}"'
                        for k, v in fields.items() if k != "stepvalue")
        text += "".join(f" stepvalue: {v}" for v in fields.get("stepvalue", []))
        text = f"base_lr: {base} {text}"
        yield f"lr_{name}", {"solver": np.frombuffer(text.encode(), dtype=np.uint8),
                             "total_steps": np.array([LR_STEPS], dtype=np.int64),
                             "lrs": np.array(lrs, dtype=np.float64)}


def cases():
    gen = torch.Generator().manual_seed(31)
    for name, solver, layout in OPTIM_CASES:
        yield f"optim_{name}", optim_case(solver, layout, gen, lars=solver["type"] == "lars")
    yield from clip_cases(gen)
    yield from lr_cases()
