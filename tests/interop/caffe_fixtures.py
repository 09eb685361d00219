"""Caffe fixtures of our own, written from Caffe's schema (engine/interop/caffe_import.proto compiled
here with protoc --python_out; no file of Caffe's): nets of the model zoo's shapes (an inception
block with LRN, a SqueezeNet fire module, MobileNet's depthwise convolution + BatchNorm + Scale, a
ResNet bottleneck with Eltwise SUM, LeNet in train_test form with Data layers, phases and
Accuracy), each as a V2 prototxt with a V2 .caffemodel and, where V1 had the layers (no
BatchNorm or Scale there), as a V1 prototxt with a V1 .caffemodel (4-d num/channels/height/width
blobs: InnerProduct's weight 1 x 1 x O x K). Each is imported and ruche's forward
(tools/onnx_probe) held to an independent numpy implementation of Caffe's semantics (ceil
pooling with the clip of the last window, LRN, BatchNorm + Scale with the scale factor) at 1e-5.

usage: caffe_fixtures.py RUCHE ONNX_PROBE
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

RUCHE, PROBE = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from caffe_numpy import bn_scale, conv, ip, lrn, pool, relu  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def caffe_schema(tmp):
    """Caffe's schema as Python classes: our caffe_import.proto through protoc."""
    subprocess.run(["protoc", f"--python_out={tmp}", f"-I{SOURCE}",
                    "engine/interop/caffe_import.proto"], check=True)
    sys.path.insert(0, tmp)
    from engine.interop import caffe_import_pb2  # noqa: E402
    from google.protobuf import text_format  # noqa: E402
    return caffe_import_pb2, text_format


# --- the nets: (name, prototxt, V1 prototxt or None, input shape, blob shapes, forward) ---------
def conv_layer(name, bottom, top, out, k, stride=1, pad=0, group=1, bias=True, v1=False):
    p = f"num_output: {out} kernel_size: {k} stride: {stride} pad: {pad} group: {group}"
    p += "" if bias else " bias_term: false"
    kind = "CONVOLUTION" if v1 else '"Convolution"'
    block = "layers" if v1 else "layer"
    return (f'{block} {{ name: "{name}" type: {kind} bottom: "{bottom}" top: "{top}" '
            f"convolution_param {{ {p} }} }}\n")


def simple(name, kind, bottoms, top, extra="", v1=False):
    t = kind[0] if v1 else f'"{kind[1]}"'
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    return f'{"layers" if v1 else "layer"} {{ name: "{name}" type: {t} {b} top: "{top}" {extra} }}\n'


RELU, POOL, LRN, CONCAT = ("RELU", "ReLU"), ("POOLING", "Pooling"), ("LRN", "LRN"), ("CONCAT", "Concat")
IP, ELTWISE = ("INNER_PRODUCT", "InnerProduct"), ("ELTWISE", "Eltwise")


def inception(v1):
    L = lambda *a, **k: simple(*a, v1=v1, **k)  # noqa: E731
    text = 'name: "inception"\ninput: "data"\ninput_dim: 2\ninput_dim: 4\ninput_dim: 10\ninput_dim: 10\n'
    text += L("norm", LRN, ["data"], "norm", "lrn_param { local_size: 5 alpha: 0.001 beta: 0.75 }")
    text += conv_layer("b1", "norm", "b1", 3, 1, v1=v1)
    text += conv_layer("b2r", "norm", "b2r", 2, 1, v1=v1) + L("b2r_relu", RELU, ["b2r"], "b2r")
    text += conv_layer("b2", "b2r", "b2", 3, 3, pad=1, v1=v1)
    text += L("b3p", POOL, ["norm"], "b3p", "pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 }")
    text += conv_layer("b3", "b3p", "b3", 2, 1, v1=v1)
    text += L("cat", CONCAT, ["b1", "b2", "b3"], "cat") + L("cat_relu", RELU, ["cat"], "cat")
    text += L("pool", POOL, ["cat"], "pool", "pooling_param { pool: AVE kernel_size: 3 stride: 2 }")
    blobs = {"b1": [(3, 4, 1, 1), (3,)], "b2r": [(2, 4, 1, 1), (2,)], "b2": [(3, 2, 3, 3), (3,)],
             "b3": [(2, 4, 1, 1), (2,)]}

    def forward(x, W):
        n = lrn(x, 5, 0.001, 0.75)
        b1 = conv(n, *W["b1"])
        b2 = conv(relu(conv(n, *W["b2r"])), *W["b2"], pad=1)
        b3 = conv(pool(n, 3, 1, 1, "max"), *W["b3"])
        y = pool(relu(np.concatenate([b1, b2, b3], axis=1)), 3, 2, 0, "ave")
        assert y.shape[2:] == (5, 5), y.shape  # ceil((10 - 3) / 2) + 1 = 5 (floor: 4)
        return y
    return text, (2, 4, 10, 10), blobs, forward


def fire(v1):
    L = lambda *a, **k: simple(*a, v1=v1, **k)  # noqa: E731
    text = 'name: "fire"\ninput: "data"\ninput_dim: 2\ninput_dim: 3\ninput_dim: 10\ninput_dim: 10\n'
    text += conv_layer("conv1", "data", "conv1", 6, 3, stride=2, v1=v1)
    text += L("relu1", RELU, ["conv1"], "conv1")
    text += L("pool1", POOL, ["conv1"], "pool1", "pooling_param { pool: MAX kernel_size: 3 stride: 2 }")
    text += conv_layer("squeeze", "pool1", "squeeze", 2, 1, v1=v1) + L("sq_relu", RELU, ["squeeze"], "squeeze")
    text += conv_layer("e1", "squeeze", "e1", 4, 1, v1=v1) + L("e1_relu", RELU, ["e1"], "e1")
    text += conv_layer("e3", "squeeze", "e3", 4, 3, pad=1, v1=v1) + L("e3_relu", RELU, ["e3"], "e3")
    text += L("cat", CONCAT, ["e1", "e3"], "cat")
    text += L("fc", IP, ["cat"], "fc", "inner_product_param { num_output: 5 }")
    blobs = {"conv1": [(6, 3, 3, 3), (6,)], "squeeze": [(2, 6, 1, 1), (2,)],
             "e1": [(4, 2, 1, 1), (4,)], "e3": [(4, 2, 3, 3), (4,)], "fc": [(5, 8 * 2 * 2), (5,)]}

    def forward(x, W):
        y = pool(relu(conv(x, *W["conv1"], stride=2)), 3, 2, 0, "max")
        assert y.shape[2:] == (2, 2), y.shape  # 10 -> 4 -> ceil((4 - 3) / 2) + 1 = 2
        s = relu(conv(y, *W["squeeze"]))
        y = np.concatenate([relu(conv(s, *W["e1"])), relu(conv(s, *W["e3"], pad=1))], axis=1)
        return ip(y, *W["fc"])
    return text, (2, 3, 10, 10), blobs, forward


def bn_layers(name, top, v1=False):
    # MobileNet's form: three param blocks on BatchNorm (its statistics), the Scale in place.
    return (f'layer {{ name: "{name}/bn" type: "BatchNorm" bottom: "{top}" top: "{top}" '
            "param { lr_mult: 0 decay_mult: 0 } param { lr_mult: 0 decay_mult: 0 } "
            "param { lr_mult: 0 decay_mult: 0 } }\n"
            f'layer {{ name: "{name}/scale" type: "Scale" bottom: "{top}" top: "{top}" '
            "param { lr_mult: 1 decay_mult: 0 } param { lr_mult: 1 decay_mult: 0 } "
            "scale_param { bias_term: true } }\n")


def bn_blobs(c):
    return {"/bn": [(c,), (c,), (1,)], "/scale": [(c,), (c,)]}


def mobilenet(v1):
    if v1:
        return None
    text = 'name: "mobilenet"\nlayer { name: "data" type: "Input" top: "data" ' \
           "input_param { shape { dim: 2 dim: 4 dim: 7 dim: 7 } } }\n"
    text += conv_layer("dw", "data", "dw", 4, 3, stride=2, pad=1, group=4, bias=False)
    text += bn_layers("dw", "dw") + 'layer { name: "dw/relu" type: "ReLU" bottom: "dw" top: "dw" }\n'
    text += conv_layer("pw", "dw", "pw", 6, 1, bias=False)
    text += bn_layers("pw", "pw") + 'layer { name: "pw/relu" type: "ReLU" bottom: "pw" top: "pw" }\n'
    text += 'layer { name: "gap" type: "Pooling" bottom: "pw" top: "gap" ' \
            "pooling_param { pool: AVE global_pooling: true } }\n"
    blobs = {"dw": [(4, 1, 3, 3)], "pw": [(6, 4, 1, 1)]}
    for n, c in (("dw", 4), ("pw", 6)):
        blobs.update({n + k: v for k, v in bn_blobs(c).items()})

    def forward(x, W):
        y = conv(x, W["dw"][0], None, stride=2, pad=1, group=4)
        y = relu(bn_scale(y, *W["dw/bn"], *W["dw/scale"]))
        y = relu(bn_scale(conv(y, W["pw"][0], None), *W["pw/bn"], *W["pw/scale"]))
        return y.mean(axis=(2, 3))
    return text, (2, 4, 7, 7), blobs, forward


def resnet(v1):
    if v1:
        return None
    text = 'name: "resnet"\ninput: "data"\ninput_shape { dim: 2 dim: 3 dim: 11 dim: 11 }\n'
    text += conv_layer("conv1", "data", "conv1", 8, 3, stride=2, pad=1, bias=False) + bn_layers("bn_conv1", "conv1")
    text += 'layer { name: "conv1_relu" type: "ReLU" bottom: "conv1" top: "conv1" }\n'
    text += 'layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" ' \
            "pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n"
    text += conv_layer("res2a_branch1", "pool1", "res2a_branch1", 8, 1, bias=False) + bn_layers("bn2a_branch1", "res2a_branch1")
    text += conv_layer("res2a_branch2a", "pool1", "res2a_branch2a", 4, 1, bias=False) + bn_layers("bn2a_branch2a", "res2a_branch2a")
    text += 'layer { name: "res2a_branch2a_relu" type: "ReLU" bottom: "res2a_branch2a" top: "res2a_branch2a" }\n'
    text += conv_layer("res2a_branch2b", "res2a_branch2a", "res2a_branch2b", 4, 3, pad=1, bias=False) + bn_layers("bn2a_branch2b", "res2a_branch2b")
    text += 'layer { name: "res2a_branch2b_relu" type: "ReLU" bottom: "res2a_branch2b" top: "res2a_branch2b" }\n'
    text += conv_layer("res2a_branch2c", "res2a_branch2b", "res2a_branch2c", 8, 1, bias=False) + bn_layers("bn2a_branch2c", "res2a_branch2c")
    text += 'layer { name: "res2a" type: "Eltwise" bottom: "res2a_branch1" bottom: "res2a_branch2c" top: "res2a" }\n'
    text += 'layer { name: "res2a_relu" type: "ReLU" bottom: "res2a" top: "res2a" }\n'
    text += 'layer { name: "pool5" type: "Pooling" bottom: "res2a" top: "pool5" pooling_param { pool: AVE kernel_size: 3 stride: 1 } }\n'
    text += 'layer { name: "fc" type: "InnerProduct" bottom: "pool5" top: "fc" inner_product_param { num_output: 4 } }\n'
    blobs = {"conv1": [(8, 3, 3, 3)], "res2a_branch1": [(8, 8, 1, 1)], "res2a_branch2a": [(4, 8, 1, 1)],
             "res2a_branch2b": [(4, 4, 3, 3)], "res2a_branch2c": [(8, 4, 1, 1)], "fc": [(4, 8), (4,)]}
    for n, c in (("bn_conv1", 8), ("bn2a_branch1", 8), ("bn2a_branch2a", 4), ("bn2a_branch2b", 4),
                 ("bn2a_branch2c", 8)):
        blobs.update({n + k: v for k, v in bn_blobs(c).items()})

    def forward(x, W):
        B = lambda y, n: bn_scale(y, *W[n + "/bn"], *W[n + "/scale"])  # noqa: E731
        y = relu(B(conv(x, W["conv1"][0], None, stride=2, pad=1), "bn_conv1"))
        y = pool(y, 3, 2, 0, "max")
        assert y.shape[2:] == (3, 3), y.shape  # 11 -> 6 -> ceil((6 - 3) / 2) + 1 = 3 (floor: 2)
        short = B(conv(y, W["res2a_branch1"][0], None), "bn2a_branch1")
        r = relu(B(conv(y, W["res2a_branch2a"][0], None), "bn2a_branch2a"))
        r = relu(B(conv(r, W["res2a_branch2b"][0], None, pad=1), "bn2a_branch2b"))
        r = B(conv(r, W["res2a_branch2c"][0], None), "bn2a_branch2c")
        y = pool(relu(short + r), 3, 1, 0, "ave")
        return ip(y, *W["fc"])
    return text, (2, 3, 11, 11), blobs, forward


def lenet(v1):
    block, data, acc, loss = (("layers", "DATA", "ACCURACY", "SOFTMAX_LOSS") if v1 else
                              ("layer", '"Data"', '"Accuracy"', '"SoftmaxWithLoss"'))
    L = lambda *a, **k: simple(*a, v1=v1, **k)  # noqa: E731
    text = 'name: "LeNet"\n'
    for phase, source, batch in (("TRAIN", "mnist_train_lmdb", 64), ("TEST", "mnist_test_lmdb", 100)):
        text += (f'{block} {{ name: "mnist" type: {data} top: "data" top: "label" '
                 f"include {{ phase: {phase} }} transform_param {{ scale: 0.00390625 }} "
                 f'data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }} }}\n')
    text += conv_layer("conv1", "data", "conv1", 4, 5, v1=v1)
    text += L("pool1", POOL, ["conv1"], "pool1", "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
    text += conv_layer("conv2", "pool1", "conv2", 6, 5, v1=v1)
    text += L("pool2", POOL, ["conv2"], "pool2", "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
    text += L("ip1", IP, ["pool2"], "ip1", "inner_product_param { num_output: 12 }")
    text += L("relu1", RELU, ["ip1"], "ip1")
    text += L("ip2", IP, ["ip1"], "ip2", "inner_product_param { num_output: 10 }")
    text += (f'{block} {{ name: "accuracy" type: {acc} bottom: "ip2" bottom: "label" '
             'top: "accuracy" include { phase: TEST } }\n')
    text += f'{block} {{ name: "loss" type: {loss} bottom: "ip2" bottom: "label" top: "loss" }}\n'
    blobs = {"conv1": [(4, 1, 5, 5), (4,)], "conv2": [(6, 4, 5, 5), (6,)],
             "ip1": [(12, 6 * 4 * 4), (12,)], "ip2": [(10, 12), (10,)]}

    def forward(x, W):
        y = pool(conv(x, *W["conv1"]), 2, 2, 0, "max")
        y = pool(conv(y, *W["conv2"]), 2, 2, 0, "max")
        return ip(relu(ip(y, *W["ip1"])), *W["ip2"])
    return text, (2, 1, 28, 28), blobs, forward


NETS = [inception, fire, mobilenet, resnet, lenet]


def caffemodel(net, blobs, values, v1):
    """The .caffemodel, as Caffe writes one: the net's layers with their blobs; V1 blobs in the
    4-d num/channels/height/width."""
    layers = {l.name: l for l in (net.layers if v1 else net.layer)}
    for owner, shapes in blobs.items():
        for shape, v in zip(shapes, values[owner]):
            b = layers[owner].blobs.add()
            if v1:
                b.num, b.channels, b.height, b.width = (1,) * (4 - len(shape)) + tuple(shape)
            else:
                b.shape.dim.extend(shape)
            b.data.extend(np.asarray(v, np.float32).reshape(-1).tolist())
    return net.SerializeToString()


def weights_for(blobs, rng):
    w = {}
    for owner, shapes in blobs.items():
        if owner.endswith("/bn"):  # Caffe's sums and the factor
            c = shapes[0][0]
            f = rng.uniform(2, 5)
            w[owner] = [rng.normal(0, 1, c) * f, rng.uniform(0.5, 2, c) * f, [f]]
        else:
            # Weights at 1 / sqrt(fan_in) keep activations near 1, where f32 holds 1e-5.
            w[owner] = [rng.normal(0, 1 / np.sqrt(np.prod(s[1:])) if len(s) > 1 else 0.5, s)
                        for s in shapes]
        w[owner] = [np.asarray(v, np.float32) for v in w[owner]]
    return w


def main():
    rng = np.random.default_rng(9)
    with tempfile.TemporaryDirectory() as tmp:
        pb, text_format = caffe_schema(tmp)
        checked = []
        for make in NETS:
            for v1 in (False, True):
                spec = make(v1)
                if spec is None:
                    continue
                text, shape, blobs, forward = spec
                tag = f"{make.__name__}{'_v1' if v1 else ''}"
                # The text must read as Caffe's schema (and, for V1, hold only `layers`).
                net_msg = text_format.Parse(text, pb.NetParameter())
                assert (len(net_msg.layers) > 0) == v1 and (len(net_msg.layer) > 0) != v1, tag
                net = os.path.join(tmp, tag + ".prototxt")
                with open(net, "w") as f:
                    f.write(text)
                W = weights_for(blobs, rng)
                model = os.path.join(tmp, tag + ".caffemodel")
                with open(model, "wb") as f:
                    f.write(caffemodel(net_msg, blobs, W, v1))
                out = os.path.join(tmp, tag)
                args = ["import", "caffe", net, "--weights", model, "-o", out]
                if make is lenet:
                    args += ["--input", "1,28,28"]  # Caffe reads the shape from its LMDB
                p = subprocess.run([RUCHE, *args], capture_output=True, text=True)
                assert p.returncode == 0, f"{tag}: {p.stdout}{p.stderr}"
                x = rng.normal(0, 1, shape).astype(np.float32)
                np.savez(os.path.join(tmp, "x.npz"), x=x)
                got_path = os.path.join(tmp, "got.npz")
                p = subprocess.run([PROBE, os.path.join(out, "net.prototxt"),
                                    os.path.join(out, "weights.npz"), os.path.join(tmp, "x.npz"),
                                    got_path], capture_output=True, text=True)
                assert p.returncode == 0, f"{tag}: {p.stdout}{p.stderr}"
                got = np.load(got_path)["logits"].reshape(shape[0], -1)
                want = forward(x.astype(np.float64),
                               {k: [v.astype(np.float64) for v in vs] for k, vs in W.items()})
                np.testing.assert_allclose(got, want.reshape(shape[0], -1), rtol=1e-5, atol=1e-5,
                                           err_msg=tag)
                checked.append(tag)
        # Without --input, LeNet's Data layer determines no shape: one line naming what is missing.
        p = subprocess.run([RUCHE, "import", "caffe", os.path.join(tmp, "lenet.prototxt"),
                            "--weights", os.path.join(tmp, "lenet.caffemodel"), "-o",
                            os.path.join(tmp, "no_shape")], capture_output=True, text=True)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and "'mnist'" in lines[0] and \
            "--input" in lines[0], p.stderr
    print("caffe fixtures: forward equals numpy's Caffe semantics for " + ", ".join(checked))


if __name__ == "__main__":
    main()
