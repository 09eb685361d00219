"""ruche import caffe: each place where Caffe's meaning differs from PyTorch's, imported and checked
against Caffe's (each check fails if the import read it the PyTorch way):

- a BatchNorm whose output another layer also reads stays unmerged (affine false + Scale), its
  running statistics divided by the scale factor, a factor of 0 giving 0;
- use_global_stats carried;
- each loss's Caffe divisor as a loss_weight on ruche's mean: EuclideanLoss sum / 2N,
  SigmoidCrossEntropyLoss's BATCH_SIZE default, NONE (a sum over the batch), the older normalize,
  Caffe's loss_weight on top;
- Eltwise SUM with coeff, PROD and MAX: ruche's forward (tools/onnx_probe) against numpy;
- SoftmaxWithLoss's ignore_label (PyTorch ignores nothing unless told): the first step's loss and
  accuracy and the test report's samples, accuracy and loss leave the ignored samples out, with
  Caffe's VALID divisor; with normalize: false the report says approximate; -1 in an npz is read
  as no class and held out for validation like the rest; a TEST-only Accuracy's top_k 2 becomes
  eval_top_k, "top2" in eval-test.json;
- `ruche train --net` on an unconverted Caffe file: one line saying to run ruche import caffe.

usage: caffe_semantics.py RUCHE ONNX_PROBE
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from caffe_wire import net_blobs  # noqa: E402

RUCHE, PROBE = sys.argv[1], sys.argv[2]


def run(*args, ok=True):
    p = subprocess.run([RUCHE, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit(f"ruche {' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def layer_text(net, name):
    """The text of the layer named `name` in a ruche net.prototxt."""
    start = net.index(f'name: "{name}"')
    end = net.find("\nlayer {", start)
    return net[start:end if end >= 0 else len(net)]


def probe(tmp, out, x):
    np.savez(os.path.join(tmp, "x.npz"), x=x)
    got = os.path.join(tmp, "got.npz")
    p = subprocess.run([PROBE, os.path.join(out, "net.prototxt"), os.path.join(out, "weights.npz"),
                        os.path.join(tmp, "x.npz"), got], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return np.load(got)["logits"]


def unmerged_batch_norm(tmp, rng):
    net = write(os.path.join(tmp, "bn.prototxt"), """name: "unmerged"
input: "data" input_shape { dim: 2 dim: 3 dim: 4 dim: 4 }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn"
        batch_norm_param { use_global_stats: true eps: 0.001 } }
layer { name: "sc" type: "Scale" bottom: "bn" top: "sc" scale_param { bias_term: true } }
layer { name: "cat" type: "Concat" bottom: "bn" bottom: "sc" top: "cat" }
""")
    mean, var = rng.normal(0, 1, 3), rng.uniform(0.5, 2, 3)
    gamma, beta = rng.uniform(0.5, 1.5, 3), rng.normal(0, 1, 3)
    model = os.path.join(tmp, "bn.caffemodel")
    with open(model, "wb") as f:
        f.write(net_blobs([("bn", "BatchNorm", [mean * 4, var * 4, [4.0]]),
                           ("sc", "Scale", [gamma, beta])]))
    out = os.path.join(tmp, "bn")
    run("import", "caffe", net, "--weights", model, "-o", out)
    text = open(os.path.join(out, "net.prototxt")).read()
    bn = layer_text(text, "bn")
    assert "affine: false" in bn and "use_global_stats: true" in bn, bn
    assert 'type: "Scale"' in text, text
    npz = np.load(os.path.join(out, "weights.npz"))
    np.testing.assert_allclose(npz["bn.running_mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(npz["bn.running_var"], var, rtol=1e-5)
    x = rng.normal(0, 1, (2, 3, 4, 4)).astype(np.float32)
    c = lambda v: np.asarray(v)[None, :, None, None]  # noqa: E731
    y = (x - c(mean)) / np.sqrt(c(var) + 1e-3)
    want = np.concatenate([y, y * c(gamma) + c(beta)], axis=1).reshape(2, -1)
    np.testing.assert_allclose(probe(tmp, out, x).reshape(2, -1), want, rtol=1e-5, atol=1e-5)

    # A scale factor of 0 (a BatchNorm never run forward in Caffe): statistics 0, not inf.
    with open(model, "wb") as f:
        f.write(net_blobs([("bn", "BatchNorm", [mean, var, [0.0]]),
                           ("sc", "Scale", [gamma, beta])]))
    run("import", "caffe", net, "--weights", model, "-o", out)
    npz = np.load(os.path.join(out, "weights.npz"))
    assert not npz["bn.running_mean"].any() and not npz["bn.running_var"].any()


def loss_weights(tmp):
    """Caffe's divisor per loss as the loss_weight ruche's mean loss gets."""
    head = """name: "losses"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 2 dim: 3 dim: 3 } shape { dim: 4 dim: 6 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 6 } }
"""
    cases = [
        # EuclideanLoss: sum / 2N = mean over N x 6 times 6 / 2; Caffe's loss_weight 0.5 on top.
        ('type: "EuclideanLoss" loss_weight: 0.5', 1.5),
        # SigmoidCrossEntropyLoss: BATCH_SIZE by default (sum / N): times 6.
        ('type: "SigmoidCrossEntropyLoss"', 6.0),
        ('type: "SigmoidCrossEntropyLoss" loss_param { normalization: VALID }', None),
        ('type: "SigmoidCrossEntropyLoss" loss_param { normalize: true }', None),
        ('type: "SigmoidCrossEntropyLoss" loss_param { normalization: NONE }', 24.0),
        # SoftmaxWithLoss on [N, C]: VALID, BATCH_SIZE and FULL are the mean; NONE the sum over 4.
        ('type: "SoftmaxWithLoss" loss_param { normalize: false }', None),
        ('type: "SoftmaxWithLoss" loss_param { normalization: NONE }', 4.0),
    ]
    for i, (loss, want) in enumerate(cases):
        text = head + f'layer {{ name: "loss" {loss} bottom: "ip" bottom: "label" top: "loss" }}\n'
        if "Softmax" in loss:
            text = text.replace("shape { dim: 4 dim: 6 }", "shape { dim: 4 }")
        net = write(os.path.join(tmp, f"loss{i}.prototxt"), text)
        out = os.path.join(tmp, f"loss{i}")
        run("import", "caffe", net, "-o", out)
        got = re.findall(r"loss_weight: ([0-9.e+-]+)",
                         layer_text(open(os.path.join(out, "net.prototxt")).read(), "loss"))
        assert (got == [] if want is None else [float(g) for g in got] == [want]), (loss, got)


def eltwise(tmp, rng):
    net = write(os.path.join(tmp, "eltwise.prototxt"), """name: "eltwise"
input: "data" input_shape { dim: 2 dim: 3 dim: 2 dim: 2 }
layer { name: "a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "b" type: "Convolution" bottom: "data" top: "b" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" bottom: "data" top: "sum"
        eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 } }
layer { name: "prod" type: "Eltwise" bottom: "sum" bottom: "b" top: "prod" eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "prod" bottom: "a" bottom: "data" top: "max"
        eltwise_param { operation: MAX } }
""")
    w = {k: [rng.normal(0, 1, (3, 3, 1, 1)), rng.normal(0, 1, 3)] for k in ("a", "b")}
    model = os.path.join(tmp, "eltwise.caffemodel")
    with open(model, "wb") as f:
        f.write(net_blobs([(k, "Convolution", v) for k, v in w.items()]))
    out = os.path.join(tmp, "eltwise")
    run("import", "caffe", net, "--weights", model, "-o", out)
    x = rng.normal(0, 1, (2, 3, 2, 2)).astype(np.float32)
    conv = lambda k: (np.einsum("nchw,oc->nohw", x, w[k][0][:, :, 0, 0])  # noqa: E731
                      + w[k][1][None, :, None, None])
    a, b = conv("a"), conv("b")
    s = 0.5 * a - 2 * b + x
    want = np.maximum(np.maximum(s * b, a), x).reshape(2, -1)
    np.testing.assert_allclose(probe(tmp, out, x).reshape(2, -1), want, rtol=1e-5, atol=1e-5)


def ignore_label_and_top_k(tmp, rng):
    """A zero-weight InnerProduct with bias b gives every sample the logits b, so Caffe's numbers
    need no input: its loss is the mean over the samples not labelled 1 of lse(b) - b[y]."""
    text = """name: "ignore"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 8 dim: 1 dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc"
        accuracy_param { top_k: 2 } include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        loss_param { ignore_label: 1 } }
"""
    b = np.array([0.5, -1.0, 2.0, 0.0])
    model = os.path.join(tmp, "ignore.caffemodel")
    with open(model, "wb") as f:
        f.write(net_blobs([("ip", "InnerProduct", [np.zeros((4, 4)), b])]))
    out = os.path.join(tmp, "ignore")
    run("import", "caffe", write(os.path.join(tmp, "ignore.prototxt"), text), "--weights", model,
        "-o", out)
    net = open(os.path.join(out, "net.prototxt")).read()
    assert "ignore_label: 1" in layer_text(net, "loss") and "eval_top_k: 2" in net, net
    y, y_test = np.array([0, 1, 2, 3, 1, 1, 0, 2]), np.array([0, 1, 2, 3, 1, 3, 0, 2])
    x = rng.normal(0, 1, (8, 1, 2, 2)).astype(np.float32)
    data = os.path.join(tmp, "ignore.npz")
    np.savez(data, x_train=x, y_train=y.astype(np.int64), x_test=x,
             y_test=y_test.astype(np.int64))
    solver = write(os.path.join(tmp, "ignore_solver.prototxt"),
                   'type: "sgd" base_lr: 1e-6 max_iter: 1 batch_size: 8 display: 1\n'
                   "val_fraction: 0 shuffle: false augment: false random_seed: 1\n")
    rundir = os.path.join(tmp, "ignore_run")
    run("train", "--net", os.path.join(out, "net.prototxt"), "--solver", solver, "--data", data,
        "--init-weights", os.path.join(out, "weights.npz"), "--out", rundir)

    nll = np.log(np.exp(b).sum()) - b  # every sample's loss for each label
    def caffe(labels, ignored=1):  # loss, top-1 and top-2 accuracy over the samples Caffe counts
        kept = labels[labels != ignored]
        return nll[kept].mean(), np.mean(kept == 2), np.mean((kept == 2) | (kept == 0)), len(kept)
    loss, acc, _, _ = caffe(y)
    assert not np.isclose(loss, nll[y].mean(), rtol=1e-3)  # what ignoring nothing gives
    train = [json.loads(line) for line in open(os.path.join(rundir, "metrics.jsonl"))]
    train = [r for r in train if r.get("split") == "train"][0]
    np.testing.assert_allclose(train["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(train["acc"], acc, rtol=1e-6)  # 2 of 5, not 2 of 8
    loss, acc, top2, kept = caffe(y_test)
    report = json.load(open(os.path.join(rundir, "eval-test.json")))
    assert report["samples"] == kept == 6, report["samples"]
    counts = np.asarray(report["confusion_matrix"]["counts"])
    assert counts.sum() == kept and counts[1].sum() == 0, counts  # no true class 1 counted
    np.testing.assert_allclose([report["accuracy"], report["top2"]], [acc, top2], rtol=1e-6)
    np.testing.assert_allclose(report["loss"], loss, rtol=1e-4)  # b moved by one step of lr 1e-6
    printed = run("eval", "--weights", rundir, "--data", data, "--split", "test").stdout
    assert "(6 samples)" in printed and "top-2 accuracy 66.67%" in printed, printed

    # Caffe's normalize: false divides by the batch, ignored samples included: not ruche's mean.
    run("import", "caffe", write(os.path.join(tmp, "ignore_batch.prototxt"), text.replace(
        "ignore_label: 1", "ignore_label: 1 normalize: false")), "-o", out + "_batch")
    lines = open(os.path.join(out + "_batch", "import-report.txt")).read()
    assert "with ignore_label" in lines and "approximate" in lines, lines

    # Caffe's -1, no class: the npz reads it as unlabelled, and val_fraction 0.5 halves every
    # class and the unlabelled samples alike, so both halves hold labels 0 0 1 2 2 3 and two -1.
    run("import", "caffe", write(os.path.join(tmp, "ignore_m1.prototxt"), text.replace(
        "ignore_label: 1", "ignore_label: -1")), "--weights", model, "-o", out + "_m1")
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, -1, -1, -1, -1])
    np.savez(data, x=rng.normal(0, 1, (16, 1, 2, 2)).astype(np.float32), y=y.astype(np.int64))
    run("train", "--net", os.path.join(out + "_m1", "net.prototxt"), "--solver", solver, "--data",
        data, "--val-fraction", "0.5", "--init-weights", os.path.join(out, "weights.npz"),
        "--out", rundir + "_m1")
    loss, acc, top2, _ = caffe(np.array([0, 0, 1, 2, 2, 3]), ignored=-1)
    records = [json.loads(line) for line in open(os.path.join(rundir + "_m1", "metrics.jsonl"))]
    train = [r for r in records if r.get("split") == "train"][0]
    val = [r for r in records if r.get("split") == "val"][0]
    np.testing.assert_allclose([train["loss"], train["acc"]], [loss, acc], rtol=1e-5)
    np.testing.assert_allclose([val["loss"], val["acc"], val["top2"]], [loss, acc, top2], rtol=1e-4)


def unconverted_net_refused(tmp):
    for text, field in [
        ('name: "n"\nlayer { name: "d" type: "Data" top: "data" include { phase: TRAIN } }\n',
         "include"),
        ('name: "n"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n',
         "input"),
        ('name: "n"\nlayers { name: "c" type: CONVOLUTION }\n', "layers"),
        ('name: "n"\nlayer { name: "d" type: "Input" top: "d" '
         'input_param { shape { dim: 1 dim: 2 } } }\n', "input_param { shape }"),
    ]:
        net = write(os.path.join(tmp, "caffe_net.prototxt"), text)
        p = run("train", "--net", net, "--data", "synthetic", "--out", os.path.join(tmp, "run"),
                ok=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, (p.returncode, p.stderr)
        assert "ruche import caffe" in lines[0] and f"'{field}'" in lines[0], lines[0]


def main():
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        unmerged_batch_norm(tmp, rng)
        loss_weights(tmp)
        eltwise(tmp, rng)
        ignore_label_and_top_k(tmp, rng)
        unconverted_net_refused(tmp)
    print("caffe semantics: BatchNorm factor and use_global_stats, loss divisors, Eltwise, "
          "ignore_label and top_k, unconverted nets refused")


if __name__ == "__main__":
    main()
