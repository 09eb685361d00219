#!/usr/bin/env python3
"""ruche import caffe --solver: Caffe's solvers as ruche's, with Caffe's meaning (issue 20).

Each case is a solver of our own written from Caffe's schema, imported with a one-layer net; the
written solver.prototxt must hold the fields Caffe's meaning gives (defaults included), the report
must name what has no meaning in ruche, and AdaGrad, AdaDelta and RMSProp with momentum are
refused in one line naming the file and the type.

usage: caffe_solver.py RUCHE_BINARY
"""
import pathlib
import subprocess
import sys
import tempfile

NET = """name: "tiny"
input: "data" input_shape { dim: 1 dim: 1 dim: 4 dim: 4 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 } }
"""

# (solver text, fields solver.prototxt must hold, words the report must hold)
CASES = [
    ('net: "x" test_state: { stage: "test-on-test" } test_iter: 100 test_interval: 500 '
     'test_initialization: false base_lr: 0.01 lr_policy: "step" gamma: 0.1 stepsize: 1000 '
     'momentum: 0.9 weight_decay: 0.0005 snapshot: 1000 snapshot_prefix: "s" iter_size: 2 '
     'clip_gradients: 10 solver_mode: CPU type: "SGD"',
     ['type: "sgd"', 'momentum_form: "caffe"', "momentum: 0.9", "eval_every_steps: 500",
      "checkpoint_every_steps: 1000", "iter_size: 2", "clip_grad_norm: 5", 'lr_policy: "step"',
      "stepsize: 1000"],
     ["test_state", "test_iter", "snapshot_prefix", "solver_mode"]),
    # Caffe's defaults: momentum 0 when absent (ruche's would be 0.9); power 0 when absent.
    ('base_lr: 0.1 lr_policy: "poly" max_iter: 100 type: "sgd"',
     ["momentum: 0", 'lr_policy: "poly"', "power: 0", "max_iter: 100"], []),
    ('base_lr: 0.1 lr_policy: "sigmoid" gamma: -0.01 stepsize: 50 momentum: 0.9 type: "nesterov"',
     ["nesterov: true", 'momentum_form: "caffe"', 'lr_policy: "sigmoid"', "gamma: -0.01",
      "stepsize: 50"], []),
    ('base_lr: 0.001 momentum: 0.9 lr_policy: "fixed" type: "ADAM"',
     ['type: "adam"', "beta1: 0.9", "beta2: 0.999", "epsilon: 1e-08"], ["delta"]),
    ('base_lr: 0.01 lr_policy: "exp" gamma: 0.99 rms_decay: 0.98 solver_type: RMSPROP',
     ['type: "rmsprop"', "rms_alpha: 0.98", 'lr_policy: "exp"'], []),
    ('base_lr: 0.01 lr_policy: "inv" gamma: 0.0001 power: 0.75 weight_decay: 0.001 '
     'regularization_type: "L1"',
     ['lr_policy: "inv"', "power: 0.75", "l1_decay: 0.001"], []),
]

REFUSED = [
    ('base_lr: 0.01 type: "AdaGrad"', "'AdaGrad' has no ruche optimizer"),
    ("base_lr: 0.01 solver_type: ADADELTA", "'adadelta' has no ruche optimizer"),
    ('base_lr: 0.01 momentum: 0.9 type: "RMSProp"', "Momentum cannot be used with RMSProp"),
    ('base_lr: 0.01 lr_policy: "triangular"', "unknown lr_policy 'triangular'"),
]


def main() -> int:
    ruche = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "net.prototxt").write_text(NET)
        for i, (text, fields, words) in enumerate(CASES + [(t, [], []) for t, _ in REFUSED]):
            solver, out = tmp / f"solver{i}.prototxt", tmp / f"out{i}"
            solver.write_text(text)
            p = subprocess.run([ruche, "import", "caffe", str(tmp / "net.prototxt"), "--solver",
                                str(solver), "-o", str(out)], capture_output=True, text=True)
            if i >= len(CASES):
                want = REFUSED[i - len(CASES)][1]
                lines = p.stderr.strip().splitlines()
                if p.returncode != 2 or len(lines) != 1 or want not in lines[0] \
                        or solver.name not in lines[0]:
                    failures.append(f"{text}: want one line with '{want}', got {p.returncode} "
                                    f"{p.stderr!r}")
                continue
            if p.returncode != 0:
                failures.append(f"{text}: import failed: {p.stderr.strip()}")
                continue
            written = (out / "solver.prototxt").read_text()
            report = (out / "import-report.txt").read_text()
            failures += [f"{text}: solver.prototxt lacks '{f}':\n{written}"
                         for f in fields if f not in written.splitlines()]
            failures += [f"{text}: report lacks '{w}':\n{report}" for w in words if w not in report]
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print(f"caffe solvers: {len(CASES)} mapped, {len(REFUSED)} refused in one line")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
