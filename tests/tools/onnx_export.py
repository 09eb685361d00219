#!/usr/bin/env python3
"""`ruche export --format onnx`: trained nets (fashion_cnn, resnet18 at 32 px, the MLP) and a
hand-made net of every other layer setting are exported, pass onnx.checker (full_check), and give
ruche's logits (tests/tools/onnx_probe: the net in test phase) on the same inputs, norm-relative
1e-4, through onnxruntime when it imports and always through the small numpy interpreter below.
A layer ONNX cannot express is a one-line error naming it (exit 2).

usage: onnx_export.py RUCHE_BINARY ONNX_PROBE WORKDIR
"""
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper

try:
    import onnxruntime
except ImportError:  # optional (make deps installs it in .venv): the numpy interpreter remains
    onnxruntime = None

TOL = 1e-4


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# ---- a numpy interpreter of the ops ruche exports (NCHW, float64 for a clean reference) ----

def attrs_of(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def windows(x, kh, kw, sh, sw, pads, dil=(1, 1), fill=0.0):
    """[N, C, OH, OW, kh, kw] views of x padded by pads (top, left, bottom, right)."""
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=fill)
    n, c, h, w = x.shape
    oh = (h - dil[0] * (kh - 1) - 1) // sh + 1
    ow = (w - dil[1] * (kw - 1) - 1) // sw + 1
    out = np.empty((n, c, oh, ow, kh, kw), x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[..., i, j] = x[:, :, i * dil[0]:i * dil[0] + sh * (oh - 1) + 1:sh,
                               j * dil[1]:j * dil[1] + sw * (ow - 1) + 1:sw]
    return out


def conv(x, w, b, a):
    g = a.get("group", 1)
    kh, kw = w.shape[2:]
    cols = windows(x, kh, kw, *a["strides"], a["pads"], a["dilations"])  # im2col
    n, c, oh, ow = cols.shape[:4]
    cg, og = c // g, w.shape[0] // g
    y = np.concatenate([
        np.einsum("nchwij,ocij->nohw", cols[:, k * cg:(k + 1) * cg], w[k * og:(k + 1) * og])
        for k in range(g)], axis=1)
    return y if b is None else y + b[None, :, None, None]


def conv_transpose(x, w, b, a):
    """Scatter every kernel tap into the full output, then crop the pads."""
    g = a.get("group", 1)
    (sh, sw), (dh, dw), pads = a["strides"], a["dilations"], a["pads"]
    oph, opw = a.get("output_padding", [0, 0])
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    cg, og = c // g, w.shape[1]
    full = np.zeros((n, og * g, (h - 1) * sh + dh * (kh - 1) + 1 + oph,
                     (wd - 1) * sw + dw * (kw - 1) + 1 + opw))
    for k in range(g):
        for i in range(kh):
            for j in range(kw):
                tap = np.einsum("nchw,co->nohw", x[:, k * cg:(k + 1) * cg],
                                w[k * cg:(k + 1) * cg, :, i, j])
                full[:, k * og:(k + 1) * og, i * dh:i * dh + sh * (h - 1) + 1:sh,
                     j * dw:j * dw + sw * (wd - 1) + 1:sw] += tap
    y = full[:, :, pads[0]:full.shape[2] - pads[2], pads[1]:full.shape[3] - pads[3]]
    return y if b is None else y + b[None, :, None, None]


def resize(x, a, scales, sizes):
    """Resize of the last two axes: nearest (asymmetric, floor) or linear (align_corners,
    half_pixel), by scales or by sizes, with edge values outside the input."""
    text = lambda key, default: a.get(key, default.encode()).decode()
    mode, ctm = text("mode", "nearest"), text("coordinate_transformation_mode", "half_pixel")
    y = x
    for axis in (2, 3):
        n_in = x.shape[axis]
        if sizes is not None:
            n_out = int(sizes[axis])
            scale = n_out / n_in
        else:
            scale = float(scales[axis])
            n_out = int(np.floor(n_in * scale))
        o = np.arange(n_out, dtype=np.float64)
        if ctm == "asymmetric":
            src = o / scale
        elif ctm == "align_corners":
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0 * o
        else:
            assert ctm == "half_pixel", ctm
            src = (o + 0.5) / scale - 0.5
        if mode == "nearest":
            assert text("nearest_mode", "round_prefer_floor") == "floor"
            y = np.take(y, np.clip(np.floor(src).astype(int), 0, n_in - 1), axis=axis)
            continue
        assert mode == "linear", mode
        src = np.clip(src, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        shape = [1, 1, 1, 1]
        shape[axis] = n_out
        l1 = (src - i0).reshape(shape)
        y = np.take(y, i0, axis=axis) * (1 - l1) + np.take(y, i1, axis=axis) * l1
    return y


def pool(x, a, kind):
    assert a.get("ceil_mode", 0) == 0, "the interpreter pools with ceil_mode 0 only"
    kh, kw = a["kernel_shape"]
    pads = a.get("pads", [0, 0, 0, 0])
    if kind == "max":
        return windows(x, kh, kw, *a["strides"], pads, fill=-np.inf).max(axis=(4, 5))
    total = windows(x, kh, kw, *a["strides"], pads).sum(axis=(4, 5))
    if a.get("count_include_pad", 0):
        return total / (kh * kw)
    return total / windows(np.ones_like(x), kh, kw, *a["strides"], pads).sum(axis=(4, 5))


def softmax(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def run_numpy(model, x):
    values = {t.name: numpy_helper.to_array(t).astype(np.float64)
              if t.data_type == onnx.TensorProto.FLOAT else numpy_helper.to_array(t)
              for t in model.graph.initializer}
    values["input"] = x.astype(np.float64)
    for node in model.graph.node:
        a = attrs_of(node)
        v = [values[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Conv":
            y = conv(v[0], v[1], v[2] if len(v) > 2 else None, a)
        elif op == "ConvTranspose":
            y = conv_transpose(v[0], v[1], v[2] if len(v) > 2 else None, a)
        elif op == "Resize":
            y = resize(v[0], a, v[2] if len(v) > 2 else None, v[3] if len(v) > 3 else None)
        elif op == "Shape":
            y = np.array(v[0].shape[a.get("start", 0):a.get("end", v[0].ndim)], np.int64)
        elif op == "Concat":
            y = np.concatenate(v, axis=a["axis"])
        elif op == "BatchNormalization":
            xx, scale, shift, mean, var = (t if t.ndim == 4 else t[None, :, None, None] for t in v)
            y = (xx - mean) / np.sqrt(var + a.get("epsilon", 1e-5)) * scale + shift
        elif op == "Relu":
            y = np.maximum(v[0], 0)
        elif op == "LeakyRelu":
            y = np.where(v[0] > 0, v[0], a["alpha"] * v[0])
        elif op == "Sigmoid":
            y = 1 / (1 + np.exp(-v[0]))
        elif op == "Tanh":
            y = np.tanh(v[0])
        elif op == "MaxPool":
            y = pool(v[0], a, "max")
        elif op == "AveragePool":
            y = pool(v[0], a, "ave")
        elif op == "GlobalAveragePool":
            y = v[0].mean(axis=(2, 3), keepdims=True)
        elif op == "GlobalMaxPool":
            y = v[0].max(axis=(2, 3), keepdims=True)
        elif op == "Flatten":
            y = v[0].reshape(int(np.prod(v[0].shape[:a["axis"]])), -1)
        elif op == "Reshape":
            shape = [v[0].shape[i] if d == 0 else d for i, d in enumerate(v[1])]
            y = v[0].reshape(shape)
        elif op == "Gemm":
            assert a.get("transB") == 1 and not a.get("transA")
            y = v[0] @ v[1].T + (v[2] if len(v) > 2 else 0)
        elif op in ("Add", "Sum"):
            y = sum(v)
        elif op == "Softmax":
            y = softmax(v[0], a.get("axis", -1))
        elif op == "Identity":
            y = v[0]
        elif op == "Mul":  # the preprocessing in front of the net, the decision behind it
            y = v[0] * v[1]
        elif op == "Div":
            y = v[0] / v[1]
        elif op == "Sub":
            y = v[0] - v[1]
        elif op == "Gather":
            y = np.take(v[0], v[1], axis=a.get("axis", 0))
        elif op == "GreaterOrEqual":
            y = v[0] >= v[1]
        elif op == "Cast":
            assert a["to"] == onnx.TensorProto.INT64, a
            y = v[0].astype(np.int64)
        else:
            raise AssertionError(f"the numpy interpreter has no {op}")
        values[node.output[0]] = y
    return {o.name: values[o.name] for o in model.graph.output}


# ---- the checks ----

def ruche_logits(probe, run, x, work):
    np.savez(work / "probe_x.npz", x=x)
    subprocess.run([probe, str(run / "net.prototxt"), str(run / "model.npz"),
                    str(work / "probe_x.npz"), str(work / "probe_out.npz")], check=True)
    return np.load(work / "probe_out.npz")["logits"]


def check_model(path, x, expected, label):
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17, model.opset_import
    inp = model.graph.input[0]
    assert inp.name == "input", inp.name
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N", dims[0]
    assert [d.dim_value for d in dims[1:]] == list(x.shape[1:]), (dims, x.shape)
    outputs = [o.name for o in model.graph.output]
    assert outputs == ["logits", "probs"], outputs

    results = {"numpy": run_numpy(model, x)}
    if onnxruntime is not None:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        results["onnxruntime"] = dict(zip(outputs, session.run(outputs, {"input": x})))
    for engine, out in results.items():
        e_logits = rel(out["logits"], expected)
        e_probs = rel(out["probs"], softmax(expected.astype(np.float64)))
        print(f"{label}: {engine} logits {e_logits:.2e}, probs {e_probs:.2e}")
        assert out["logits"].shape == expected.shape, (out["logits"].shape, expected.shape)
        assert e_logits < TOL and e_probs < TOL, f"{label}: {engine} differs from ruche"
    return model


def train(ruche, work, name, model, data, extra=()):
    # --normalize none: the run's record scales by 1 and normalises nothing, so the exported graph
    # takes what the net reads and onnx_probe's logits are its reference (the preprocessing nodes
    # are tests/tools/onnx_preprocess.py's).
    run = work / name
    shutil.rmtree(run, ignore_errors=True)
    subprocess.run([ruche, "train", "--model", model, "--data", str(data), "--max-steps", "3",
                    "--batch-size", "8", "--val-fraction", "0", "--normalize", "none",
                    "--out", str(run), *extra],
                   check=True, stdout=subprocess.DEVNULL)
    return run


def export(ruche, source, out, *extra):
    return subprocess.run([ruche, "export", "--from", str(source), "--format", "onnx", "-o",
                           str(out), *extra], capture_output=True, text=True)


# A net of the settings the built-in models leave out: grouped dilated conv with bias, batch norm
# without affine, leaky ReLU, sigmoid, tanh, average pooling with padding (count_include_pad off),
# a three-way sum, global max pooling, dropout, Flatten from axis 2, no Input dims (--input).
ZOO = """
name: "zoo"
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 2 dilation: 2 group: 3 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1"
        batch_norm_param { affine: false eps: 0.001 } }
layer { name: "leaky" type: "ReLU" bottom: "bn1" top: "bn1" relu_param { negative_slope: 0.1 } }
layer { name: "sig" type: "Sigmoid" bottom: "bn1" top: "sig" }
layer { name: "tanh" type: "TanH" bottom: "bn1" top: "tanh" }
layer { name: "sum" type: "Eltwise" bottom: "bn1" bottom: "sig" bottom: "tanh" top: "sum" }
layer { name: "conv2" type: "Convolution" bottom: "sum" top: "conv2"
        convolution_param { num_output: 4 kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1
                            pad_h: 1 pad_w: 0 bias_term: false } }
layer { name: "avg" type: "Pooling" bottom: "conv2" top: "avg"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 count_include_pad: false } }
layer { name: "gmax" type: "Pooling" bottom: "avg" top: "gmax"
        pooling_param { pool: MAX global_pooling: true } }
layer { name: "drop" type: "Dropout" bottom: "gmax" top: "gmax" }
layer { name: "flat" type: "Flatten" bottom: "gmax" top: "flat" flatten_param { axis: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc"
        inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


# Transposed convolutions (groups, dilation, output padding, a rectangular one without bias) and
# upsampling: nearest by scale, bilinear by size (down) and by scale with align_corners.
UPNET = """
name: "upnet"
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "deconv1" type: "Deconvolution" bottom: "data" top: "deconv1"
        convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 output_padding: 1
                            dilation: 2 group: 2 } }
layer { name: "near" type: "Upsample" bottom: "deconv1" top: "near"
        upsample_param { scale_factor: 2 } }
layer { name: "deconv2" type: "Deconvolution" bottom: "near" top: "deconv2"
        convolution_param { num_output: 3 kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2
                            pad_w: 1 bias_term: false } }
layer { name: "down" type: "Upsample" bottom: "deconv2" top: "down"
        upsample_param { mode: BILINEAR height: 13 width: 9 } }
layer { name: "corners" type: "Upsample" bottom: "down" top: "corners"
        upsample_param { mode: BILINEAR scale_h: 1.5 scale_w: 2 align_corners: true } }
layer { name: "half" type: "Upsample" bottom: "corners" top: "half"
        upsample_param { mode: BILINEAR scale_factor: 1.25 } }
layer { name: "gap" type: "Pooling" bottom: "half" top: "gap"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "gap" top: "fc"
        inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def upnet_weights(rng):
    w = {"deconv1.weight": rng.normal(0, 0.5, (2, 2, 3, 3)),
         "deconv1.bias": rng.normal(0, 0.5, 4),
         "deconv2.weight": rng.normal(0, 0.5, (4, 3, 2, 3)),
         "fc.weight": rng.normal(0, 0.5, (5, 3)), "fc.bias": rng.normal(0, 0.5, 5)}
    return {k: v.astype(np.float32) for k, v in w.items()}


def zoo_weights(rng):
    w = {"conv1.weight": rng.normal(0, 0.5, (6, 1, 3, 3)), "conv1.bias": rng.normal(0, 0.5, 6),
         "bn1.running_mean": rng.normal(0, 0.3, 6), "bn1.running_var": rng.uniform(0.5, 2, 6),
         "conv2.weight": rng.normal(0, 0.5, (4, 6, 3, 1)),
         "fc.weight": rng.normal(0, 0.5, (5, 4)), "fc.bias": rng.normal(0, 0.5, 5)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    w["bn1.num_batches_tracked"] = np.array(7, np.int64)
    return w


def main() -> int:
    ruche, probe, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if onnxruntime is None:
        print("onnxruntime not importable: checking with the numpy interpreter only")

    gray = work / "gray.npz"
    np.savez(gray, x=rng.random((48, 1, 28, 28), dtype=np.float32),
             y=rng.integers(0, 10, 48).astype(np.int32))
    color = work / "color.npz"
    np.savez(color, x=rng.random((24, 3, 32, 32), dtype=np.float32),
             y=rng.integers(0, 10, 24).astype(np.int32))
    x_gray = rng.normal(0, 1, (5, 1, 28, 28)).astype(np.float32)  # 5: not the training batch
    x_color = rng.normal(0, 1, (3, 3, 32, 32)).astype(np.float32)

    # Trained nets, from the run directory; fashion_cnn also from its checkpoint.
    for name, data, x in [("fashion_cnn", gray, x_gray), ("mlp", gray, x_gray),
                          ("resnet18", color, x_color)]:
        run = train(ruche, work, name, name, data)
        r = export(ruche, run, work / f"{name}.onnx")
        assert r.returncode == 0, r.stderr
        print(r.stdout.strip())
        check_model(work / f"{name}.onnx", x, ruche_logits(probe, run, x, work), name)
        if name == "fashion_cnn":
            r = export(ruche, run / "ckpt" / "latest", work / "ckpt.onnx")
            assert r.returncode == 0, r.stderr
            check_model(work / "ckpt.onnx", x, ruche_logits(probe, run, x, work), "checkpoint")

    # The zoo net, without Input dims: the sample shape comes from --input.
    zoo = work / "zoo"
    zoo.mkdir(exist_ok=True)
    (zoo / "net.prototxt").write_text(ZOO)
    np.savez(zoo / "model.npz", **zoo_weights(rng))
    x = rng.normal(0, 1, (4, 3, 12, 12)).astype(np.float32)
    r = export(ruche, zoo, work / "zoo.onnx")
    assert r.returncode == 2 and "--input" in r.stderr, (r.returncode, r.stderr)
    r = export(ruche, zoo, work / "zoo.onnx", "--input", "3,12,12")
    assert r.returncode == 0, r.stderr
    model = check_model(work / "zoo.onnx", x, ruche_logits(probe, zoo, x, work), "zoo")
    ops = {n.op_type for n in model.graph.node}
    assert {"LeakyRelu", "Sigmoid", "Tanh", "Sum", "AveragePool", "GlobalMaxPool",
            "Reshape"} <= ops, ops
    assert "Dropout" not in ops, ops

    # Deconvolution and Upsample: ConvTranspose and Resize (and Shape, Concat for sizes).
    up = work / "upnet"
    up.mkdir(exist_ok=True)
    (up / "net.prototxt").write_text(UPNET)
    np.savez(up / "model.npz", **upnet_weights(rng))
    x = rng.normal(0, 1, (3, 2, 6, 5)).astype(np.float32)
    r = export(ruche, up, work / "upnet.onnx", "--input", "2,6,5")
    assert r.returncode == 0, r.stderr
    model = check_model(work / "upnet.onnx", x, ruche_logits(probe, up, x, work), "upnet")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("ConvTranspose") == 2 and ops.count("Resize") == 4, ops

    # What ONNX cannot express is named: Flatten counted from the back.
    (zoo / "net.prototxt").write_text(ZOO.replace("axis: 2", "axis: -1"))
    r = export(ruche, zoo, work / "bad.onnx", "--input", "3,12,12")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "layer 'flat' (Flatten)" in r.stderr and "ONNX" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (work / "bad.onnx").exists(), r.stderr
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
