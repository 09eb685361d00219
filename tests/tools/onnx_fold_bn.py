#!/usr/bin/env python3
"""`ruche export --format onnx` folds each batch norm into the convolution before it (when nothing
else reads that convolution's output): a net with a folded conv+BN (bias, affine), a folded
grouped conv + Caffe-style in-place BN without affine, and a conv read by its BN and by a sum (not
folded) is exported with and without --no-fold-bn; through onnxruntime both give the same logits
within 1e-5 norm-relative, and ruche's own (tests/tools/onnx_probe) within 1e-5.

usage: onnx_fold_bn.py RUCHE_BINARY ONNX_PROBE WORKDIR
"""
import pathlib
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime

TOL = 1e-5

NET = """
name: "fold"
layer { name: "data" type: "Input" top: "data" top: "label" input_param { dim: 3 dim: 10 dim: 10 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" batch_norm_param { eps: 0.001 } }
layer { name: "relu1" type: "ReLU" bottom: "bn1" top: "bn1" }
layer { name: "conv2" type: "Convolution" bottom: "bn1" top: "conv2"
        convolution_param { num_output: 6 kernel_size: 3 stride: 2 group: 2 bias_term: false } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2"
        batch_norm_param { affine: false } }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3"
        convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "bn3" type: "BatchNorm" bottom: "conv3" top: "bn3" }
layer { name: "sum" type: "Eltwise" bottom: "conv3" bottom: "bn3" top: "sum" }
layer { name: "fc" type: "InnerProduct" bottom: "sum" top: "fc"
        inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def weights(rng):
    w = {"conv1.weight": rng.normal(0, 0.3, (8, 3, 3, 3)), "conv1.bias": rng.normal(0, 0.5, 8),
         "conv2.weight": rng.normal(0, 0.3, (6, 4, 3, 3)),
         "conv3.weight": rng.normal(0, 0.3, (6, 6, 1, 1)), "conv3.bias": rng.normal(0, 0.5, 6),
         "fc.weight": rng.normal(0, 0.3, (5, 96)), "fc.bias": rng.normal(0, 0.5, 5)}
    for bn, c, affine in [("bn1", 8, True), ("bn2", 6, False), ("bn3", 6, True)]:
        w[f"{bn}.running_mean"] = rng.normal(0, 0.5, c)
        w[f"{bn}.running_var"] = rng.uniform(0.3, 3.0, c)
        if affine:
            w[f"{bn}.weight"] = rng.uniform(0.5, 1.5, c)
            w[f"{bn}.bias"] = rng.normal(0, 0.5, c)
    w = {k: v.astype(np.float32) for k, v in w.items()}
    for bn in ("bn1", "bn2", "bn3"):
        w[f"{bn}.num_batches_tracked"] = np.array(10, np.int64)
    return w


def export(ruche, source, out, *extra):
    r = subprocess.run([ruche, "export", "--from", str(source), "--format", "onnx", "-o", str(out),
                        *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    return model


def logits(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> int:
    ruche, probe, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    run = work / "fold"
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    (run / "net.prototxt").write_text(NET)
    np.savez(run / "model.npz", **weights(rng))
    x = rng.normal(0, 1, (4, 3, 10, 10)).astype(np.float32)

    folded = export(ruche, run, work / "folded.onnx")
    kept = export(ruche, run, work / "kept.onnx", "--no-fold-bn")
    folded_ops = [n.op_type for n in folded.graph.node]
    kept_ops = [n.op_type for n in kept.graph.node]
    assert folded_ops.count("BatchNormalization") == 1, folded_ops  # bn3: conv3 is read twice
    assert kept_ops.count("BatchNormalization") == 3, kept_ops
    names = {i.name for i in folded.graph.initializer}
    assert "conv1.weight" not in names and "bn1.running_mean" not in names, sorted(names)
    assert "conv3.weight" in names and "bn3.running_mean" in names, sorted(names)

    np.savez(work / "probe_x.npz", x=x)
    subprocess.run([probe, str(run / "net.prototxt"), str(run / "model.npz"),
                    str(work / "probe_x.npz"), str(work / "probe_out.npz")], check=True)
    ruche_logits = np.load(work / "probe_out.npz")["logits"]
    y_folded, y_kept = logits(work / "folded.onnx", x), logits(work / "kept.onnx", x)
    print(f"folded vs kept {rel(y_folded, y_kept):.2e}, folded vs ruche "
          f"{rel(y_folded, ruche_logits):.2e}, kept vs ruche {rel(y_kept, ruche_logits):.2e}")
    assert rel(y_folded, y_kept) < TOL
    assert rel(y_folded, ruche_logits) < TOL and rel(y_kept, ruche_logits) < TOL

    r = subprocess.run([ruche, "export", "--from", str(run), "--format", "npz", "-o",
                        str(work / "w.npz"), "--no-fold-bn"], capture_output=True, text=True)
    assert r.returncode == 2 and "--no-fold-bn" in r.stderr, (r.returncode, r.stderr)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
