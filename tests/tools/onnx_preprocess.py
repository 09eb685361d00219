#!/usr/bin/env python3
"""`ruche export --format onnx` takes the data as users have it (issue 15): the run's preprocessing
record (RUN/preprocess.json, a checkpoint's manifest) becomes nodes in front of the net, so the
model fed raw inputs gives what `ruche eval` gives.

- Fashion-MNIST: an mlp trained 30 steps, exported from the run and from its checkpoint, fed the
  raw test images (uint8 from the IDX file, as float32 0-255): the probabilities of ruche's own
  evaluation of the test split (tests/tools/onnx_probe --eval: evaluate_run, as `ruche eval`) to
  1e-5, and `ruche eval --split test`'s accuracy exactly.
- Channels: a 3-channel npz of stored values trained with --net from a folder whose
  preprocess.json asks for scale 0.3, BGR, a mean image and per-channel mean/std (how an import
  brings a record); exported from the run and from RUN/ckpt/step-N (the mean image two levels up).
  A record whose sample shape differs from the net's is a one-line error.
- --threshold: a two-class npz of vectors; `ruche eval --target-recall 0.9` chooses a threshold on
  val; the model exported with it decides on the test samples as eval's report counts (tp, fp,
  tn, fn) and, per sample, as probs[:, 1] >= threshold on ruche's probabilities.
- A run directory from before records (preprocess.json removed): `ruche eval` still evaluates,
  export says the model expects normalised input and builds the graph without preprocessing,
  which, fed the inputs normalised by hand, gives eval's probabilities.

Through onnxruntime when it imports, and always through onnx_export.py's numpy interpreter (on a
few samples).

usage: onnx_preprocess.py RUCHE_BINARY ONNX_PROBE WORKDIR [FASHION_MNIST_DIR]
"""
import gzip
import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnx.numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from onnx_export import onnxruntime, run_numpy  # noqa: E402  (the interpreter, the runtime)

TOL = 1e-5
FASHION = "/usr/share/datasets/fashion-mnist"


def run(*args, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}")
    return r


def train(ruche, out, *args):
    shutil.rmtree(out, ignore_errors=True)
    run(ruche, "train", "--out", out, "--threads", "2", *args)
    return out


def export(ruche, source, out, *extra, check=True):
    return run(ruche, "export", "--from", source, "--format", "onnx", "-o", out, *extra,
               check=check)


def ruche_eval(ruche, weights, data, *extra):
    """`ruche eval`'s JSON report (and the report's text, for the threshold's exact digits)."""
    report = pathlib.Path(str(weights) + ".eval.json")
    run(ruche, "eval", "--weights", weights, "--data", data, "--split", "test", "--threads", "2",
        "--json", report, *extra)
    text = report.read_text()
    return json.loads(text), text


def ruche_probs(probe, weights, data, work):
    """ruche's evaluation of the test split, per sample: probs [N, K], labels [N]."""
    out = work / "probe_eval.npz"
    run(probe, "--eval", weights, data, "test", out)
    z = np.load(out)
    return z["probs"], z["labels"]


def onnx_outputs(path, x, numpy_samples=16):
    """The model's outputs on x through onnxruntime (else the numpy interpreter), and the numpy
    interpreter's on the first numpy_samples samples, which must agree."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    names = [o.name for o in model.graph.output]
    ref = run_numpy(model, x[:numpy_samples])
    if onnxruntime is None:
        out = run_numpy(model, x)
    else:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = dict(zip(names, session.run(names, {"input": x})))
        e = np.abs(out["probs"][:numpy_samples] - ref["probs"]).max()
        assert e < TOL, f"{path}: onnxruntime and the numpy interpreter differ by {e:.2e}"
    return model, out


def metadata(model):
    return {p.key: p.value for p in model.metadata_props}


def compare(label, path, x, probs, labels, accuracy):
    """The ONNX model on x against ruche's probabilities (1e-5) and eval's accuracy (exact)."""
    model, out = onnx_outputs(path, x)
    e = float(np.abs(out["probs"] - probs).max())
    onnx_accuracy = float((out["probs"].argmax(1) == labels).mean())
    print(f"{label}: {len(x)} samples, max |probs - ruche| {e:.2e}, accuracy onnx "
          f"{onnx_accuracy:.4f} ruche eval {accuracy:.4f}")
    assert e < TOL, f"{label}: the ONNX probabilities differ from ruche's by {e:.2e}"
    assert onnx_accuracy == accuracy, f"{label}: accuracy {onnx_accuracy} != eval's {accuracy}"
    return model, out


def preprocess_ops(model):
    return [n.op_type for n in model.graph.node if n.name.startswith("preprocess/")]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion(ruche, probe, work, data):
    """An mlp trained 30 steps on Fashion-MNIST, fed the raw test pixels."""
    fm = train(ruche, work / "fashion", "--model", "mlp", "--data", data, "--max-steps", "30",
               "--batch-size", "32")
    images = read_idx(pathlib.Path(data) / "t10k-images-idx3-ubyte.gz")
    x = images.astype(np.float32)[:, None]  # [N, 1, 28, 28], pixel values 0-255
    probs, labels = ruche_probs(probe, fm, data, work)
    assert (labels == read_idx(pathlib.Path(data) / "t10k-labels-idx1-ubyte.gz")).all()
    report, _ = ruche_eval(ruche, fm / "model.npz", data)
    record = json.loads((fm / "preprocess.json").read_text())
    for source, name in [(fm, "fashion.onnx"), (fm / "ckpt" / "latest", "fashion_ckpt.onnx")]:
        r = export(ruche, source, work / name)
        print(r.stdout.strip())
        assert "pixel values 0-255" in r.stdout, r.stdout
        model, _ = compare(f"fashion-mnist from {source.name}", work / name, x, probs, labels,
                           report["accuracy"])
        assert preprocess_ops(model) == ["Div", "Sub", "Div"], preprocess_ops(model)
        meta = metadata(model)
        assert json.loads(meta["ruche.preprocess"]) == record, meta["ruche.preprocess"]
        assert json.loads(meta["ruche.class_names"]) == record["class_names"], meta
        assert model.graph.input[0].doc_string.startswith("float32 pixel values 0-255"), model
    return fm, x, probs, labels, report


# A small conv net for 3-channel samples; Input without dims (the record says them).
COLOR_NET = """
name: "color"
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def channels(ruche, probe, work):
    """scale, BGR, mean image, mean/std: the graph against ruche's own evaluation."""
    rng = np.random.default_rng(1)
    shape = (3, 8, 8)
    # Channels far apart (R around 2, G around 0, B around -2), so a wrong order shows.
    offsets = np.array([2.0, 0.0, -2.0], np.float32)[:, None, None]

    def samples(n):
        return (rng.normal(0, 1, (n, *shape)) + offsets).astype(np.float32)

    data = work / "color.npz"
    np.savez(data, x_train=samples(96), y_train=rng.integers(0, 3, 96).astype(np.int32),
             x_test=samples(40), y_test=rng.integers(0, 3, 40).astype(np.int32))
    imported = work / "color_import"
    shutil.rmtree(imported, ignore_errors=True)
    imported.mkdir()
    (imported / "net.prototxt").write_text(COLOR_NET)
    # The mean image in scaled units, in the net's (BGR) channel order.
    np.save(imported / "mean.npy", rng.normal(0, 0.3, shape).astype(np.float32))
    record = {"source": "npz", "input": "values", "scale": 0.3, "channel_order": "BGR",
              "mean": [-0.9, 0.1, 1.1], "std": [0.4, 0.6, 0.8], "mean_image": "mean.npy",
              "sample_shape": ["3", "8", "8"], "class_names": ["a", "b", "c"]}
    (imported / "preprocess.json").write_text(json.dumps(record))
    color = train(ruche, work / "color", "--net", imported / "net.prototxt", "--data", data,
                  "--max-steps", "4", "--batch-size", "16", "--val-fraction", "0",
                  "--checkpoint-every-steps", "4")
    assert (color / "mean.npy").exists() and json.loads((color / "preprocess.json").read_text())
    x = np.load(data)["x_test"]
    probs, labels = ruche_probs(probe, color, data, work)
    report, _ = ruche_eval(ruche, color / "model.npz", data)
    steps = sorted((color / "ckpt").glob("step-*"))
    assert steps, list((color / "ckpt").iterdir())
    for source, name in [(color, "color.onnx"), (steps[-1], "color_ckpt.onnx")]:
        r = export(ruche, source, work / name)
        print(r.stdout.strip())
        assert "float32 values as the npz stores them" in r.stdout, r.stdout
        model, _ = compare(f"channels from {source.name}", work / name, x, probs, labels,
                           report["accuracy"])
        assert preprocess_ops(model) == ["Mul", "Gather", "Sub", "Sub", "Div"], \
            preprocess_ops(model)
        mean_image = [t for t in model.graph.initializer if t.name == "preprocess.mean_image"][0]
        assert list(mean_image.dims) == [1, 3, 8, 8], mean_image.dims
    # Every step counts: RGB fed reversed, or any step's constant made neutral, changes the
    # probabilities (so the match above is not a coincidence of steps that do nothing).
    _, out = onnx_outputs(work / "color.onnx", x[:, ::-1].copy())
    assert np.abs(out["probs"] - probs).max() > 1e-3, "BGR left no trace"
    model = onnx.load(str(work / "color.onnx"))
    for init in model.graph.initializer:
        if not init.name.startswith("preprocess."):
            continue
        neutral = onnx.load(str(work / "color.onnx"))
        t = [i for i in neutral.graph.initializer if i.name == init.name][0]
        value = onnx.numpy_helper.to_array(t)
        if init.name == "preprocess.channel_order":
            value = np.arange(3, dtype=np.int64)
        else:
            value = np.full_like(value, 1.0 if init.name in ("preprocess.scale", "preprocess.std")
                                 else 0.0)
        t.CopyFrom(onnx.numpy_helper.from_array(value, init.name))
        e = np.abs(run_numpy(neutral, x[:16])["probs"] - probs[:16]).max()
        print(f"channels: {init.name} made neutral: probs move by {e:.2e}")
        assert e > 1e-4, f"{init.name} left no trace"

    # A record for other samples than the net reads: one line, exit 2.
    bad = work / "color_bad"
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(color, bad, ignore=shutil.ignore_patterns("ckpt"))
    wrong = json.loads((bad / "preprocess.json").read_text())
    wrong["sample_shape"] = ["3", "4", "16"]
    (bad / "preprocess.json").write_text(json.dumps(wrong))
    r = export(ruche, bad, work / "bad.onnx", "--input", "3,8,8", check=False)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "preprocess.json" in r.stderr, r.stderr
    assert "[3, 4, 16]" in r.stderr or "3x4x16" in r.stderr or "3, 4, 16" in r.stderr, r.stderr
    assert not (work / "bad.onnx").exists()
    print("channels: a record for other samples:", r.stderr.strip())


def threshold(ruche, probe, work, fashion_run):
    """--threshold: the decisions of eval's threshold report."""
    rng = np.random.default_rng(2)

    def samples(n):
        y = rng.integers(0, 2, n).astype(np.int32)
        x = (rng.normal(0, 1, (n, 6)) + 0.8 * y[:, None] + 3).astype(np.float32)
        return x, y

    data = work / "two.npz"
    (xt, yt), (xs, ys) = samples(300), samples(200)
    np.savez(data, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    two = train(ruche, work / "two", "--model", "mlp", "--data", data, "--max-steps", "20",
                "--batch-size", "32", "--val-fraction", "0.3", "--no-checkpoint")
    report, text = ruche_eval(ruche, two / "model.npz", data, "--target-recall", "0.9")
    t = report["threshold"]
    assert t["met"] and t["chosen_on"]["split"] == "val", t
    # The threshold's digits as eval wrote them (the shortest that read back as its float).
    digits = re.search(r'"threshold":\{[^{}]*?"threshold":([-0-9.eE+]+)', text).group(1)
    r = export(ruche, two, work / "two.onnx", "--threshold", digits)
    print(r.stdout.strip())
    assert "output decision" in r.stdout, r.stdout
    model, out = onnx_outputs(work / "two.onnx", xs)
    assert [o.name for o in model.graph.output] == ["logits", "probs", "decision"], model
    assert metadata(model)["ruche.threshold"] == digits, metadata(model)
    d = out["decision"]
    assert d.dtype == np.int64 and d.shape == (len(xs),), (d.dtype, d.shape)
    counts = {"tp": int(((d == 1) & (ys == 1)).sum()), "fp": int(((d == 1) & (ys == 0)).sum()),
              "tn": int(((d == 0) & (ys == 0)).sum()), "fn": int(((d == 0) & (ys == 1)).sum())}
    expected = {k: t["evaluated_on"][k] for k in counts}
    print(f"threshold {digits} (recall 0.9 on val): onnx {counts}, ruche eval {expected}")
    assert counts == expected, (counts, expected)
    probs, labels = ruche_probs(probe, two, data, work)
    assert (labels == ys).all()
    ruche_decisions = (probs[:, 1] >= np.float32(digits)).astype(np.int64)
    assert (d == ruche_decisions).all(), np.nonzero(d != ruche_decisions)
    assert np.abs(out["probs"] - probs).max() < TOL

    # Only for two classes, only 0 < T < 1: one line, exit 2.
    for source, value, words in [(fashion_run, "0.5", "two-class"), (two, "1.5", "(0, 1)"),
                                 (two, "abc", "(0, 1)")]:
        r = export(ruche, source, work / "bad.onnx", "--threshold", value, check=False)
        assert r.returncode == 2 and words in r.stderr, (r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def before_records(ruche, probe, work, run_dir, data, x, probs, labels, record_stats):
    """A run directory without preprocess.json: eval and export still work; the model takes
    normalised input."""
    old = work / "old_run"
    shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("ckpt", "preprocess.json",
                                                                "*.eval.json"))
    report, _ = ruche_eval(ruche, old / "model.npz", data)
    r = export(ruche, old, work / "old.onnx")
    print(r.stdout.strip())
    assert "expects normalised input" in r.stdout, r.stdout
    model = onnx.load(str(work / "old.onnx"))
    assert not preprocess_ops(model), preprocess_ops(model)
    assert "ruche.preprocess" not in metadata(model), metadata(model)
    scale, mean, std = record_stats
    normalised = ((x / np.float32(round(1 / scale))) - np.float32(mean)) / np.float32(std)
    compare("before records (fed normalised input)", work / "old.onnx",
            normalised.astype(np.float32), probs, labels, report["accuracy"])


def main() -> int:
    ruche, probe, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    data = sys.argv[4] if len(sys.argv) > 4 else FASHION
    work.mkdir(parents=True, exist_ok=True)
    if onnxruntime is None:
        print("onnxruntime not importable: checking with the numpy interpreter only")
    fm, x, probs, labels, _ = fashion(ruche, probe, work, data)
    channels(ruche, probe, work)
    threshold(ruche, probe, work, fm)
    record = json.loads((fm / "preprocess.json").read_text())
    before_records(ruche, probe, work, fm, data, x, probs, labels,
                   (record["scale"], record["mean"][0], record["std"][0]))
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
