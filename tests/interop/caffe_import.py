"""ruche import caffe: a small Caffe net (conv, BatchNorm + Scale, ReLU, ceil-rounded max and
average pooling, LRN, Concat, InnerProduct, SoftmaxWithLoss, a TEST-only Accuracy) written here in
Caffe's text format, with a .caffemodel hand-encoded in Protobuf's wire format (no Caffe, no
Caffe files), imported; ruche's forward on the imported net and weights (tools/onnx_probe) must
give what numpy computes from the same blobs with Caffe's semantics (1e-5); BatchNorm + Scale
become one affine BatchNorm whose gamma and beta stay trainable. A V0 net, an unknown layer type
and an InnerProduct over axis 2 are refused in one line naming them; a solver maps its fields.

usage: caffe_import.py RUCHE ONNX_PROBE
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from caffe_numpy import bn_scale, conv, ip, lrn, pool, relu  # noqa: E402
from caffe_wire import layer_blobs as layer, net_blobs  # noqa: E402

RUCHE, PROBE = sys.argv[1], sys.argv[2]

NET = """name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1"
        param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "cat" type: "Concat" bottom: "norm1" bottom: "conv2" top: "cat" }
layer { name: "pool2" type: "Pooling" bottom: "cat" top: "pool2"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 5 } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip1" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""

SOLVER = """net: "train_val.prototxt"
test_iter: 10
test_interval: 500
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
gamma: 0.1
stepsize: 1000
max_iter: 4000
iter_size: 2
display: 20
snapshot: 1000
snapshot_prefix: "tiny"
solver_mode: GPU
type: "Nesterov"
"""


rng = np.random.default_rng(20)
W = {
    "conv1": [rng.normal(0, 0.5, (4, 3, 3, 3)), rng.normal(0, 0.5, 4)],
    "bn1": [rng.normal(0, 1, 4) * 2.5, rng.uniform(0.5, 2, 4) * 2.5, [2.5]],
    "scale1": [rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.5, 4)],
    "conv2": [rng.normal(0, 0.5, (3, 4, 1, 1)), rng.normal(0, 0.5, 3)],
    "ip1": [rng.normal(0, 0.3, (5, 7 * 3 * 3)), rng.normal(0, 0.3, 5)],
}
W = {k: [np.asarray(b, np.float32) for b in v] for k, v in W.items()}


def caffe_forward(x):
    y = relu(bn_scale(conv(x, *W["conv1"], pad=1), *W["bn1"], *W["scale1"]))
    y = pool(y, 2, 2, 0, "max")
    assert y.shape[2:] == (5, 5), y.shape  # ceil: 5x5 (floor would give 4x4)
    n1 = lrn(y, 3, 0.5, 0.75)
    c2 = conv(n1, *W["conv2"], pad=0)
    y = pool(np.concatenate([n1, c2], axis=1), 3, 2, 1, "ave")
    return ip(y, *W["ip1"])


def run(*args, ok=True):
    p = subprocess.run([RUCHE, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit(f"ruche {' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


def main():
    with tempfile.TemporaryDirectory() as tmp:
        net = os.path.join(tmp, "train_val.prototxt")
        with open(net, "w") as f:
            f.write(NET)
        solver = os.path.join(tmp, "solver.prototxt")
        with open(solver, "w") as f:
            f.write(SOLVER)
        model = os.path.join(tmp, "tiny.caffemodel")
        types = {"conv1": "Convolution", "bn1": "BatchNorm", "scale1": "Scale",
                 "conv2": "Convolution", "ip1": "InnerProduct"}
        with open(model, "wb") as f:
            f.write(net_blobs([(k, types[k], v) for k, v in W.items()], "tiny"))
        out = os.path.join(tmp, "out")
        run("import", "caffe", "--net", net, "--weights", model, "--solver", solver, "-o", out)
        for name in ("net.prototxt", "solver.prototxt", "weights.npz", "import-report.txt"):
            assert os.path.exists(os.path.join(out, name)), name
        imported = open(os.path.join(out, "net.prototxt")).read()
        assert "ceil_mode: true" in imported and "Accuracy" not in imported, imported
        # BatchNorm + Scale: one affine BatchNorm; BatchNorm's three param {lr_mult: 0} blocks
        # are Caffe's statistics', so gamma and beta stay trainable (read the PyTorch way they
        # would freeze them).
        assert 'type: "Scale"' not in imported and "affine: false" not in imported, imported
        bn = imported[imported.index('name: "bn1"'):imported.index('name: "relu1"')]
        assert "lr_mult: 0" not in bn and "momentum: 0.00" in bn, bn
        report = open(os.path.join(out, "import-report.txt")).read()
        assert "accuracy" in report and "test_iter" in report, report

        # The solver's fields.
        s = open(os.path.join(out, "solver.prototxt")).read()
        for want in ('type: "sgd"', "nesterov: true", "base_lr: 0.01", "momentum: 0.9",
                     "weight_decay: 0.0005", 'lr_policy: "step"', "stepsize: 1000",
                     "max_iter: 4000", "iter_size: 2", "display: 20"):
            assert want in s, (want, s)

        # The weights: names and Caffe's BatchNorm factor divided out.
        npz = np.load(os.path.join(out, "weights.npz"))
        np.testing.assert_allclose(npz["bn1.running_mean"], W["bn1"][0] / 2.5, rtol=1e-6)
        np.testing.assert_allclose(npz["bn1.running_var"], W["bn1"][1] / 2.5, rtol=1e-6)
        np.testing.assert_array_equal(npz["bn1.weight"], W["scale1"][0])
        np.testing.assert_array_equal(npz["bn1.bias"], W["scale1"][1])
        assert not any(k.startswith("scale1.") for k in npz.files), npz.files
        np.testing.assert_array_equal(npz["ip1.weight"], W["ip1"][0])

        # ruche's forward against Caffe's semantics in numpy.
        x = rng.normal(0, 1, (2, 3, 9, 9)).astype(np.float32)
        np.savez(os.path.join(tmp, "x.npz"), x=x)
        got_path = os.path.join(tmp, "got.npz")
        p = subprocess.run([PROBE, os.path.join(out, "net.prototxt"), os.path.join(out, "weights.npz"),
                            os.path.join(tmp, "x.npz"), got_path], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        got = np.load(got_path)["logits"]
        want = caffe_forward(x.astype(np.float64))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

        # A train_val net: the training Data layer's transform_param becomes the preprocessing
        # record (Caffe subtracts the mean before scaling: mean x scale), the TEST one is dropped;
        # a LeNet-style solver's "inv" policy keeps its power.
        tv = os.path.join(tmp, "lenet_train_val.prototxt")
        with open(tv, "w") as f:
            f.write("""name: "LeNet"
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 28 }
  data_param { source: "train_lmdb" batch_size: 64 backend: LMDB } }
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 } data_param { source: "test_lmdb" batch_size: 100 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 10 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
""")
        inv = os.path.join(tmp, "lenet_solver.prototxt")
        with open(inv, "w") as f:
            f.write('net: "x"\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: "inv"\ngamma: 0.0001\n'
                    'power: 0.75\nmax_iter: 10000\n')
        lenet = os.path.join(tmp, "lenet")
        run("import", "caffe", tv, "--solver", inv, "-o", lenet)
        import json
        rec = json.load(open(os.path.join(lenet, "preprocess.json")))
        assert rec["channel_order"] == "BGR" and rec["sample_shape"] == [3, 28, 28], rec
        np.testing.assert_allclose(rec["scale"], 0.00390625)
        np.testing.assert_allclose(rec["mean"], np.array([104, 117, 123]) * 0.00390625, rtol=1e-6)
        s = open(os.path.join(lenet, "solver.prototxt")).read()
        for want in ('lr_policy: "inv"', "gamma: 0.0001", "power: 0.75", "batch_size: 64"):
            assert want in s, (want, s)
        assert open(os.path.join(lenet, "net.prototxt")).read().count('type: "Input"') == 1

        # Refusals: one line, naming the thing.
        v0 = os.path.join(tmp, "v0.prototxt")
        with open(v0, "w") as f:
            f.write('name: "old"\nlayers { layer { name: "conv1" type: "conv" } }\n')
        p = run("import", "caffe", "--net", v0, "-o", os.path.join(tmp, "o1"), ok=False)
        assert p.returncode == 2 and "V0" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
        unknown = os.path.join(tmp, "unknown.prototxt")
        with open(unknown, "w") as f:
            f.write(NET.replace('name: "relu1" type: "ReLU"', 'name: "relu1" type: "Swish9"'))
        p = run("import", "caffe", "--net", unknown, "-o", os.path.join(tmp, "o2"), ok=False)
        assert (p.returncode == 2 and "relu1" in p.stderr and "Swish9" in p.stderr
                and len(p.stderr.strip().splitlines()) == 1), p.stderr
        # InnerProduct over axis 2 (a per-position linear layer, output [N, C, num_output]): no
        # ruche layer takes such a blob, so it is refused, naming the layer and the axis.
        axis2 = os.path.join(tmp, "axis2.prototxt")
        with open(axis2, "w") as f:
            f.write(NET.replace("inner_product_param {", "inner_product_param { axis: 2", 1))
        p = run("import", "caffe", "--net", axis2, "-o", os.path.join(tmp, "o4"), ok=False)
        assert (p.returncode == 2 and "(InnerProduct): axis 2 is not mapped" in p.stderr
                and len(p.stderr.strip().splitlines()) == 1), p.stderr
        # A blob of the wrong shape names the layer.
        bad = os.path.join(tmp, "bad.caffemodel")
        with open(bad, "wb") as f:
            f.write(layer("conv2", "Convolution", [np.zeros((3, 4, 3, 3)), np.zeros(3)]))
        p = run("import", "caffe", "--net", net, "--weights", bad, "-o", os.path.join(tmp, "o3"),
                ok=False)
        assert (p.returncode == 2 and "conv2" in p.stderr
                and len(p.stderr.strip().splitlines()) == 1), p.stderr
    print("caffe import: forward matches Caffe's semantics; V0, unknown type, InnerProduct axis 2, "
          "bad shape refused")


if __name__ == "__main__":
    main()
