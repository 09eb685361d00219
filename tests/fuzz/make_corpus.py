"""Writes the seed corpora of the fuzz targets, tests/fuzz/corpus/<target>/, from the fixtures
our tests use: the examples' prototxts, numpy's npy/npz (as tests/data/make_npz_fixtures.py),
IDX and CIFAR records as the data tests write them, tar shards as Python's tarfile and ruche
convert write them (ustar, PAX, GNU long names), a tiny training run's checkpoint and TensorBoard
events, small JPEGs and PNGs through PIL, and Caffe nets, solvers and .caffemodels (written with
the messages protoc makes from engine/interop/caffe_import.proto). Each file is a few KB at most.

usage: make_corpus.py RUCHE_BINARY [OUT_DIR] [TARGET...]   (RUCHE_PYTHON: numpy, PIL, protobuf)
Only the TARGETs' corpora are written again when some are named.
The corpus is committed; run this again only to change it. Files are named by content hash."""
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUCHE = sys.argv[1]
OUT = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests/fuzz/corpus"
ONLY = set(sys.argv[3:])
MAX_BYTES = 8192


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= MAX_BYTES, (target, len(data))
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def npy_bytes(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def prototxts():
    for path in sorted(ROOT.glob("examples/*/*.prototxt")):
        text = path.read_text()
        target = "prototxt_solver" if "solver" in path.name else "prototxt_net"
        if len(text) > MAX_BYTES:  # resnet50: its first layers
            text = text[:text.rfind("\nlayer", 0, MAX_BYTES)] + "\n"
        put(target, text)
    put("prototxt_net", 'name: "tiny"\nlayer { name: "data" type: "Input" top: "data" top: "label"'
        ' input_param { dim: 1 dim: 2 dim: 2 } }\nlayer { name: "fc" type: "InnerProduct"'
        ' bottom: "data" top: "fc" inner_product_param { num_output: 2 } param { lr_mult: 0 } }\n'
        '# a comment\nlayer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" }\n')
    for policy in ["fixed", "step", "multistep", "exp", "poly", "cosine"]:
        extra = {"step": "stepsize: 10", "multistep": "stepvalue: 5 stepvalue: 50",
                 "poly": "power: 2 min_lr: 0.001", "cosine": "min_lr: 0.0"}.get(policy, "")
        put("prototxt_solver", f'type: "sgd" base_lr: 0.1 momentum: 0.9 lr_policy: "{policy}"\n'
            f'gamma: 0.5 {extra}\nwarmup_steps: 3 weight_decay: 0.0005\n')
    put("prototxt_solver", 'lr_policy: "multistep" stepvalue_epochs: 1.5 stepvalue_epochs: 3\n'
        'warmup_epochs: 0.5 type: "adamw" base_lr: 0.001\n')


def arrays():
    fixtures = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, -2, 3], np.int32),
                np.arange(4, dtype=np.int64), np.arange(12, dtype=np.uint8).reshape(3, 2, 2),
                np.float32(2.5), np.zeros((0, 3), np.float32), np.arange(4, dtype=">f4")]
    for a in fixtures:
        put("npy", npy_bytes(a))
    put("npy", npy_bytes(np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))))
    for path in sorted(ROOT.glob("tests/data/*.npz")):
        put("npz", path.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        p = pathlib.Path(tmp) / "a.npz"
        np.savez(p, x_train=np.zeros((2, 1, 2, 2), np.float32), y_train=np.array([0, 1]))
        put("npz", p.read_bytes())
        np.savez_compressed(p, w=np.arange(8, dtype=np.float32), b=np.ones(2, np.float32))
        put("npz", p.read_bytes())


def idx(magic_dims, dims, data):
    return struct.pack(">I", 0x800 | magic_dims) + b"".join(struct.pack(">I", d) for d in dims) + data


def images():
    images3 = idx(3, [2, 3, 3], bytes(range(18)))
    labels = idx(1, [2], bytes([0, 1]))
    for b in [images3, labels, idx(3, [0, 28, 28], b"")]:
        put("idx", b)
        put("idx", gzip.compress(b, mtime=0))
    put("cifar", bytes([3]) + bytes(i % 251 for i in range(3072)))
    put("cifar", bytes([1, 7]) + bytes(i % 13 for i in range(3072)))


def jpegs():
    out = []
    grad = Image.frombytes("RGB", (16, 12), bytes((x * 16 + y * 8 + c * 60) % 256
                                                  for y in range(12) for x in range(16)
                                                  for c in range(3)))
    for kw in [{}, {"progressive": True}, {"subsampling": 0}, {"quality": 30}]:
        b = io.BytesIO()
        grad.save(b, "JPEG", **kw)
        out.append(b.getvalue())
    for mode in ["L", "CMYK"]:
        b = io.BytesIO()
        grad.convert(mode).save(b, "JPEG")
        out.append(b.getvalue())
    for b in out:
        put("jpeg", b)
    pngs = []
    for mode in ["RGB", "L", "P", "RGBA", "I;16"]:
        b = io.BytesIO()
        img = grad.convert("L").convert("I;16") if mode == "I;16" else grad.convert(mode)
        img.save(b, "PNG")
        pngs.append(b.getvalue())
    for b in pngs:
        put("png", b)
    return out[0], pngs[0]


def tars(jpeg, png):
    def shard(fmt, members):
        b = io.BytesIO()
        with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
            for name, data in members:
                info = tarfile.TarInfo(name)
                if data is None:
                    info.type = tarfile.DIRTYPE
                    t.addfile(info)
                else:
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
        data = b.getvalue().rstrip(b"\0")  # tarfile pads to a 10 KiB record: two end blocks
        return data + bytes(-len(data) % 512 + 1024)

    put("tar", shard(tarfile.USTAR_FORMAT, [("a/000.jpg", jpeg[:200]), ("a/000.cls", b"3\n"),
                                           ("a/001.png", png[:100]), ("a/001.txt", b"dog")]))
    put("tar", shard(tarfile.PAX_FORMAT, [("d", None), ("k" * 120 + ".json", b'{"label": 2}'),
                                         ("k" * 120 + ".jpg", b"\xff\xd8")]))
    put("tar", shard(tarfile.GNU_FORMAT, [("g" * 130 + ".cls", b"1"), ("x.txt", b"cat\n")]))
    put("tar", shard(tarfile.USTAR_FORMAT, [("__meta__.json", b"{}"), ("s.json", b'{"label":"cat"}')]))
    put("shard_index", "# ruche shard index 1: split, file, samples, data end, byte offset of each"
        " sample\ntrain\ttrain-000000.tar\t3\t4608\t0\t1536\t3072\n"
        "val\tval-000000.tar\t1\t1024\t0\n")
    put("shard_index", "train\tt.tar\t0\t0\n\n#\n")


def run_artifacts():
    """A tiny ruche train run (one Input of 2x2 features, an InnerProduct to 2 classes): its
    checkpoint (manifest.pb + shard, as the checkpoint target takes them) and its event file."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        rng = np.random.default_rng(1)
        x = rng.normal(size=(16, 1, 2, 2)).astype(np.float32)
        y = (x.sum(axis=(1, 2, 3)) > 0).astype(np.int64)
        np.savez(tmp / "d.npz", x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
        (tmp / "net.prototxt").write_text(
            'layer { name: "data" type: "Input" top: "data" top: "label" }\n'
            'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
            'inner_product_param { num_output: 2 } }\n'
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" '
            'top: "loss" }\n')
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [RUCHE, "train", "--out", str(tmp / "run"), "--data", str(tmp / "d.npz"),
               "--net", str(tmp / "net.prototxt"), "--max-steps", "4", "--batch-size", "4",
               "--log-every", "2", "--checkpoint-every-steps", "2", "--val-fraction", "0.25",
               "--device", "cpu"]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        for ckpt in sorted((tmp / "run/ckpt").glob("step-*")):
            manifest = (ckpt / "manifest.pb").read_bytes()
            put("manifest", manifest)
            shards = sorted(ckpt.glob("shard-*.bin"))
            shard = b"".join(s.read_bytes() for s in shards)
            put("checkpoint", struct.pack("<I", len(manifest)) + manifest + shard)
        for events in (tmp / "run").glob("events.out.tfevents.*"):
            data = events.read_bytes()
            # Whole records only, up to the size limit.
            at = 0
            while at < len(data):
                (length,) = struct.unpack_from("<Q", data, at)
                if at + 16 + length > MAX_BYTES:
                    break
                at += 16 + length
            put("tfevents", data[:at])


def caffe_messages():
    """engine/interop/caffe_import.proto's messages for Python, generated by protoc into a
    temporary folder."""
    out = tempfile.mkdtemp()
    subprocess.run(["protoc", f"--python_out={out}", f"-I{ROOT}",
                    str(ROOT / "engine/interop/caffe_import.proto")], check=True)
    sys.path.insert(0, out)
    from engine.interop import caffe_import_pb2  # noqa: E402 (generated just now)
    return caffe_import_pb2


def caffe_import():
    """The caffe_import target's input: 4 bytes of net length, the net text, 4 bytes of solver
    length, the solver text, then the .caffemodel (or a mean file's BlobProto)."""
    cf = caffe_messages()
    rng = np.random.default_rng(22)

    def blob(shape, legacy=False, double=False):
        b = cf.BlobProto()
        values = rng.normal(0, 0.5, shape).astype(np.float32).ravel().tolist()
        if legacy:  # Caffe's older num/channels/height/width
            b.num, b.channels, b.height, b.width = ([1] * 4 + list(shape))[-4:]
        else:
            b.shape.dim.extend(shape)
        (b.double_data if double else b.data).extend(values)
        return b

    def model(layers, **kw):
        m = cf.NetParameter()
        for name, shapes in layers:
            l = m.layer.add()
            l.name = name
            l.blobs.extend(blob(s, **kw) for s in shapes)
        return m.SerializeToString()

    def case(net, solver="", rest=b""):
        net, solver = net.encode(), solver.encode()
        put("caffe_import", struct.pack("<I", len(net)) + net + struct.pack("<I", len(solver)) +
            solver + rest)

    cnn = """name: "small"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" param { lr_mult: 1 }
        param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1"
        batch_norm_param { use_global_stats: false moving_average_fraction: 0.9 } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1" lrn_param { local_size: 3 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
        convolution_param { num_output: 1 kernel_h: 1 kernel_w: 1 } }
layer { name: "cat" type: "Concat" bottom: "norm1" bottom: "conv2" top: "cat" }
layer { name: "ip1" type: "InnerProduct" bottom: "cat" top: "ip1"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip1" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""
    cnn_blobs = [("conv1", [(2, 3, 3, 3), (2,)]), ("bn1", [(2,), (2,), (1,)]),
                 ("scale1", [(2,), (2,)]), ("conv2", [(1, 2, 1, 1), (1,)]),
                 ("ip1", [(3, 27), (3,)]), ("gone", [(1,)])]
    solver = """net: "train_val.prototxt" test_iter: 10 test_interval: 500 base_lr: 0.01
momentum: 0.9 weight_decay: 0.0005 lr_policy: "step" gamma: 0.1 stepsize: 1000 max_iter: 4000
iter_size: 2 display: 20 snapshot: 1000 snapshot_prefix: "small" solver_mode: GPU type: "Nesterov"
"""
    case(cnn, solver, model(cnn_blobs))
    case(cnn, "", model(cnn_blobs[:2]))

    deploy = """name: "deploy" input: "data" input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 bias_filler { type: "constant" value: 0.1 } } }
layer { name: "tanh" type: "TanH" bottom: "ip" top: "ip" }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""
    case(deploy, 'type: "Adam" base_lr: 0.001 momentum2: 0.999 lr_policy: "multistep" '
         'stepvalue: 100 stepvalue: 200 gamma: 0.5 random_seed: 7\n',
         model([("ip", [(2, 16), (2,)])], legacy=True, double=True))

    data = """layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { scale: 0.00390625 mirror: true crop_size: 4 mean_file: "net.caffemodel" }
        data_param { source: "train_lmdb" batch_size: 8 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
        data_param { source: "val_lmdb" batch_size: 4 } }
layer { name: "deconv" type: "Deconvolution" bottom: "data" top: "up"
        convolution_param { num_output: 2 kernel_size: 2 stride: 2 bias_term: false } }
layer { name: "sig" type: "Sigmoid" bottom: "up" top: "up" }
layer { name: "drop" type: "Dropout" bottom: "up" top: "up" dropout_param { dropout_ratio: 0.3 } }
layer { name: "pool" type: "Pooling" bottom: "up" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "ip2" type: "InnerProduct" bottom: "pool" top: "ip2" inner_product_param { num_output: 2 } }
layer { name: "sum" type: "Eltwise" bottom: "ip" bottom: "ip2" top: "sum" eltwise_param { operation: SUM } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "sum" bottom: "label" loss_weight: 1 }
"""
    mean = cf.BlobProto()
    mean.shape.dim.extend([1, 3, 4, 4])
    mean.data.extend(np.arange(48, dtype=np.float32).tolist())
    case(data, 'solver_type: RMSPROP rms_decay: 0.98 delta: 1e-6 base_lr: 0.01 lr_policy: "inv" '
         'gamma: 0.0001 power: 0.75 regularization_type: "L1" weight_decay: 0.001 '
         'clip_gradients: 10 average_loss: 20\n', mean.SerializeToString())
    case(data.replace('type: "Data"', 'type: "ImageData"').replace("data_param", "image_data_param")
         .replace(' mean_file: "net.caffemodel"', " mean_value: 104 mean_value: 117 mean_value: 123")
         .replace(" backend: LMDB", ""), 'lr_policy: "poly" power: 2 max_iter: 100 base_lr: 0.1\n')
    case('layers { name: "v1" type: CONVOLUTION }\n', 'lr_policy: "exp" gamma: 0.99\n')


def main():
    chosen = ONLY or {"npy", "npz", "idx", "cifar", "tar", "shard_index", "manifest", "checkpoint",
                      "tfevents", "jpeg", "png", "prototxt_net", "prototxt_solver", "caffe_import"}
    for d in chosen:
        shutil.rmtree(OUT / d, ignore_errors=True)
    if chosen & {"prototxt_net", "prototxt_solver"}:
        prototxts()
    if chosen & {"npy", "npz"}:
        arrays()
    if chosen & {"idx", "cifar"}:
        images()
    if chosen & {"jpeg", "png", "tar", "shard_index"}:
        jpeg, png = jpegs()
        tars(jpeg, png)
    if chosen & {"manifest", "checkpoint", "tfevents"}:
        run_artifacts()
    if "caffe_import" in chosen:
        caffe_import()
    for d in sorted(OUT.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


main()
