#!/usr/bin/env python3
"""The test runner and report writer behind benchmarks/gpu_check.sh (see its header for usage).

python3 gpu_check.py STAGE SCRATCH OUTDIR [DATA]
  SCRATCH holds the unpacked bundle (SCRATCH/bundle), results of earlier stages
  (SCRATCH/results/*.json), their logs (SCRATCH/logs/) and the PyTorch references.
  DATA (stage fashion): Fashion-MNIST, a directory or a .tar.xz of one (see find_fashion).
Runs the pieces of STAGE: tests from bundle/tests.json the way ctest would (environment, timeout,
working directory), each gtest executable with --gtest_output=json so the report can name every
case, and ruche or the benchmark themselves; a stage stops at a broken gate (`ruche devices`
fails, or sees no card that nvidia-smi lists) and says why. Then writes OUTDIR/summary.md, OUTDIR/results.json
and OUTDIR/logs.tar.gz covering every stage run so far on this machine. Python's standard
library only; never imports torch itself (the reference generator, the facts probe and the
benchmark run in their own interpreter).
"""
import json
import math
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time

STAGE_BUDGET_S = 8.5 * 60  # a stage must fit in 9 minutes, with margin for the report
STAGES = {
    "smoke": ["devices", "train_step"],  # the card is seen; one GPU training step runs
    "ops": ["gpu_test"],                 # the gpu-labelled test binary, every case named
    "train": ["equivalence"],            # GPU and CPU training from one npz end equal
    "fashion": ["fashion"],              # fashion_cnn to >= 92% test accuracy on one GPU
    "bench": ["bench"],                  # benchmarks/gpu_throughput.py
    "unit": ["unit"],                    # PyTorch references, then every CPU unit test
}
STAGES["all"] = STAGES["smoke"] + STAGES["ops"] + STAGES["unit"]
GROUPS = ("smoke", "ops", "train", "fashion", "bench", "unit")  # report order
# When a gate fails the rest of the stage is not run. Only the device listing: after a failed
# training step, `all` still runs gpu_test, which says which op broke.
GATES = {"devices"}
FASHION_TARGET = 0.92
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SKIP_EXIT = 77  # a script's "cannot run here" (automake's and ctest's SKIP_RETURN_CODE habit)
ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository on this machine


def log_path(scratch, name):
    path = scratch / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def bundle_env(bundle):
    """The environment bundle/env.sh produces, for the test processes only."""
    out = subprocess.run(
        ["bash", "-c", f'. "{bundle}/env.sh" && env -0'],
        check=True, capture_output=True, env=os.environ.copy())
    env = {}
    for item in out.stdout.split(b"\0"):
        if b"=" in item:
            key, value = item.split(b"=", 1)
            env[key.decode()] = value.decode(errors="replace")
    return env


def run_logged(cmd, log, env, cwd, timeout):
    """Runs cmd with stdout+stderr into log; returns (exit code or 'timeout', seconds)."""
    start = time.monotonic()
    with open(log, "wb") as f:
        f.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        f.flush()
        try:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  timeout=max(timeout, 1))
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
            f.write(f"\n[gpu_check] killed after {timeout:.0f} s\n".encode())
        except OSError as e:
            code = 127
            f.write(f"\n[gpu_check] could not start: {e}\n".encode())
    return code, round(time.monotonic() - start, 2)


def gtest_cases(json_path):
    """Per-case results from a --gtest_output=json file: {name: (passed|failed|skipped, s)}."""
    try:
        data = json.loads(pathlib.Path(json_path).read_text())
    except (OSError, ValueError):
        return None
    cases = {}
    for suite in data.get("testsuites", []):
        for case in suite.get("testsuite", []):
            name = f"{suite.get('name')}.{case.get('name')}"
            try:
                seconds = float(str(case.get("time", "0")).rstrip("s"))
            except ValueError:
                seconds = 0.0
            if case.get("failures"):
                cases[name] = ("failed", seconds)
            elif case.get("result") == "SKIPPED" or case.get("status") == "NOTRUN":
                cases[name] = ("skipped", seconds)
            else:
                cases[name] = ("passed", seconds)
    return cases


def read_metrics(path):
    """The records of a ruche run's metrics.jsonl (a line cut by a kill is dropped)."""
    records = []
    try:
        lines = pathlib.Path(path).read_text().splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


def split_of(record):
    return record.get("split") or record.get("kind")


def last_error_line(log):
    """The line of a log that says why a run failed: the last naming an error, else the last."""
    lines = [l.strip() for l in pathlib.Path(log).read_text(errors="replace").splitlines()
             if l.strip() and not l.startswith("$ ")]
    for line in reversed(lines):
        if re.search(r"error|exception|abort|fatal|not expected|killed after", line, re.I):
            return line[:300]
    return lines[-1][:300] if lines else "(no output)"


def skip_reasons(log):
    """The distinct GTEST_SKIP messages in a log (the line after '... Skipped')."""
    reasons = []
    lines = pathlib.Path(log).read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.endswith(": Skipped") and i + 1 < len(lines):
            reason = lines[i + 1].strip()
            if reason and reason not in reasons:
                reasons.append(reason)
    return reasons[:5]


class Runner:
    def __init__(self, scratch, outdir, deadline, facts, data_arg):
        self.scratch = scratch
        self.outdir = outdir
        self.bundle = scratch / "bundle"
        self.deadline = deadline
        self.facts = facts
        self.data_arg = data_arg
        self.tests = json.loads((self.bundle / "tests.json").read_text())["tests"]
        self.paths = json.loads((self.bundle / "paths.json").read_text())
        self.env = bundle_env(self.bundle)
        self.reference_dir = scratch / "reference"
        self.has_gpu = bool(facts.get("cuda_devices"))
        self.ruche = self.ruche_wrapper()
        self.exit_code = 0  # 2 when a piece could not run for want of its inputs

    def ruche_wrapper(self):
        """SCRATCH/bin/ruche: the bundle's ruche with the bundle's environment baked in, for
        Python scripts that run ruche but must import numpy or torch in their own environment
        (the bundle's LD_LIBRARY_PATH is for ruche only)."""
        wrapper = self.scratch / "bin" / "ruche"
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        lines = ["#!/bin/sh", "# written by benchmarks/gpu_check.py: the GPU bundle's ruche with "
                 "the environment of bundle/env.sh"]
        for key in sorted(self.env):
            if (os.environ.get(key) != self.env[key] and key not in ("_", "PWD", "OLDPWD", "SHLVL")
                    and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)):
                lines.append(f"export {key}={shlex.quote(self.env[key])}")
        lines.append(f'exec {shlex.quote(str(self.bundle / "bin" / "ruche"))} "$@"')
        wrapper.write_text("\n".join(lines) + "\n")
        wrapper.chmod(0o755)
        return str(wrapper)

    def labels(self, test):
        for prop in test.get("properties", []):
            if prop.get("name") == "LABELS":
                return list(prop.get("value") or [])
        return []

    def prop(self, test, name, default=None):
        for p in test.get("properties", []):
            if p.get("name") == name:
                return p.get("value")
        return default

    def map_path(self, value):
        """A build- or source-tree path of the build machine, as it is in the bundle."""
        build, source = self.paths["build_dir"], self.paths["source_dir"]
        if value.startswith(build + "/"):
            base = os.path.basename(value)
            if (self.bundle / "bin" / base).exists():
                return str(self.bundle / "bin" / base)
            if value.startswith(build + "/reference"):
                return str(self.reference_dir) + value[len(build + "/reference"):]
            return str(self.scratch / "work") + value[len(build):]
        if value == build + "/reference":
            return str(self.reference_dir)
        if value.startswith(source + "/") or value == source:
            return str(self.bundle / "src") + value[len(source):]
        return value

    def test_env(self, test):
        env = dict(self.env)
        for item in self.prop(test, "ENVIRONMENT", []) or []:
            key, _, value = item.partition("=")
            env[key] = ";".join(self.map_path(v) for v in value.split(";"))
        env["RUCHE_REFERENCE_DIR"] = str(self.reference_dir)
        env["RUCHE_SOURCE_DIR"] = str(self.bundle / "src")
        env["RUCHE_BINARY"] = str(self.bundle / "bin" / "ruche")
        return env

    def remaining(self):
        return self.deadline - time.monotonic()

    def python(self):
        """This machine's python (the one with torch and numpy), not the build machine's."""
        return os.environ.get("RUCHE_PYTHON") or shutil.which("python3") or "python3"

    def work_dir(self, name):
        """An empty SCRATCH/work/NAME."""
        path = self.scratch / "work" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def no_gpu(self, name, group):
        return {"name": name, "result": "skipped", "note": "no CUDA device", "group": group}

    # ---- unit: PyTorch references, then the CPU unit tests

    def generate_references(self):
        """PyTorch's reference numbers, once per machine (later stages reuse them)."""
        done = self.reference_dir / ".complete"
        log = log_path(self.scratch, "unit/torch_reference_fixtures.log")
        if done.exists():
            return {"name": "torch_reference_fixtures", "result": "passed", "seconds": 0,
                    "note": "reused from an earlier stage", "log": "unit/torch_reference_fixtures.log"}
        python = self.python()
        script = self.bundle / "src" / "tests" / "ops" / "reference" / "generate.py"
        shutil.rmtree(self.reference_dir, ignore_errors=True)
        code, seconds = run_logged([python, str(script), str(self.reference_dir)], log,
                                   os.environ.copy(), str(self.scratch),
                                   min(300, self.remaining()))
        if code == 0:
            done.write_text("ok\n")
        return {"name": "torch_reference_fixtures", "result": "passed" if code == 0 else "failed",
                "exit": code, "seconds": seconds, "log": "unit/torch_reference_fixtures.log"}

    def run_test(self, test, group):
        name = test["name"]
        rel_log = f"{group}/{name}.log"
        log = log_path(self.scratch, rel_log)
        record = {"name": name, "labels": self.labels(test), "log": rel_log}
        cmd = [self.map_path(c) for c in test.get("command", [])]
        if cmd and re.fullmatch(r"python3?(\.\d+)?", os.path.basename(cmd[0])):
            cmd[0] = self.python()  # the build machine's python path means nothing here
        if not cmd:
            record.update(result="not_run", note="no command (not built?)")
            return record
        if self.remaining() < 5:
            record.update(result="not_run", note="stage time budget spent")
            return record
        is_gtest = cmd[0].startswith(str(self.bundle / "bin"))
        gtest_json = self.scratch / "logs" / group / f"{name}.gtest.json"
        gtest_json.unlink(missing_ok=True)
        if is_gtest:
            cmd.append(f"--gtest_output=json:{gtest_json}")
        cwd = self.prop(test, "WORKING_DIRECTORY")
        cwd = self.map_path(cwd) if cwd else str(self.scratch / "work" / name)
        pathlib.Path(cwd).mkdir(parents=True, exist_ok=True)
        timeout = min(float(self.prop(test, "TIMEOUT", 1500) or 1500), self.remaining())
        code, seconds = run_logged(cmd, log, self.test_env(test), cwd, timeout)
        record.update(exit=code, seconds=seconds)
        record["result"] = "passed" if code == 0 else "failed"
        cases = gtest_cases(gtest_json) if is_gtest else None
        if cases is not None:
            counts = {k: sum(1 for v, _ in cases.values() if v == k)
                      for k in ("passed", "failed", "skipped")}
            record["cases"] = counts
            record["failed_cases"] = sorted(k for k, (v, _) in cases.items() if v == "failed")
            record["case_results"] = {k: [v, t] for k, (v, t) in sorted(cases.items())}
            if counts["skipped"]:
                record["skip_reasons"] = skip_reasons(log)
            if code == 0 and counts["skipped"] and not counts["passed"]:
                record["result"] = "skipped"
        elif is_gtest and code not in (0,):
            record["note"] = "no gtest JSON (crashed or killed?): " + last_error_line(log)
        return record

    def select(self, label):
        out = []
        for test in self.tests:
            labels = self.labels(test)
            if test["name"] == "torch_reference_fixtures":
                continue
            if label == "gpu" and "gpu" in labels:
                out.append(test)
            elif label == "unit" and "unit" in labels and not {"gpu", "slow", "mpi", "fault"} & set(labels):
                out.append(test)
        return out

    # ---- smoke: the card is seen, one training step runs on it

    def devices(self):
        log = log_path(self.scratch, "smoke/ruche_devices.log")
        code, seconds = run_logged([str(self.bundle / "bin" / "ruche"), "devices"], log, self.env,
                                   str(self.scratch), 60)
        text = log.read_text(errors="replace")
        record = {"name": "ruche devices", "result": "passed" if code == 0 else "failed",
                  "exit": code, "seconds": seconds, "log": "smoke/ruche_devices.log",
                  "output": [l for l in text.splitlines()[1:] if l.strip()][:8]}
        listed = [l for l in text.splitlines() if l.startswith("cuda:")]
        smi = [g for g in self.facts.get("gpu") or [] if g.strip()]
        if code == 0 and not listed:
            if smi:
                record.update(result="failed",
                              note=f"nvidia-smi lists {smi[0]} but ruche sees no CUDA device")
            else:
                record.update(result="skipped", note="no CUDA device")
        return record

    def train_step(self):
        """One training step of fashion_cnn on synthetic data on the GPU: the trainer, the ops
        it needs and the metrics line, end to end, in seconds."""
        name, rel_log = "ruche train, 1 GPU step", "smoke/ruche_train_1_step.log"
        if not self.has_gpu:
            return self.no_gpu(name, "smoke")
        out = self.work_dir("smoke_train")
        cmd = [self.ruche, "train", "--model", "fashion_cnn", "--data", "synthetic",
               "--synthetic-shape", "1,28,28", "--synthetic-classes", "10", "--device", "cuda",
               "--batch-size", "32", "--max-steps", "1", "--log-every", "1",
               "--val-fraction", "0", "--no-checkpoint", "--out", str(out)]
        log = log_path(self.scratch, rel_log)
        code, seconds = run_logged(cmd, log, os.environ.copy(), str(out),
                                   min(120, self.remaining()))
        record = {"name": name, "exit": code, "seconds": seconds, "log": rel_log,
                  "command": shlex.join(cmd)}
        train = [r for r in read_metrics(out / "metrics.jsonl") if split_of(r) == "train"]
        if code != 0:
            record.update(result="failed", note=last_error_line(log))
        elif not train or not math.isfinite(float(train[-1].get("loss", "nan"))):
            record.update(result="failed",
                          note=f"no train line with a finite loss in metrics.jsonl: {train}")
        else:
            record["result"] = "passed"
            last = train[-1]
            record["loss"] = last.get("loss")
            if "gpu_peak_mib" in last:
                record["gpu_peak_mib"] = last["gpu_peak_mib"]
            else:
                record["note"] = "metrics.jsonl has no gpu_peak_mib"
        return record

    # ---- ops: the GPU op tests

    def gpu_test(self):
        """gpu_test alone (what the ops' GPU tests are linked into); every gpu-labelled test if
        the bundle has no gpu_test."""
        tests = [t for t in self.select("gpu")
                 if os.path.basename((t.get("command") or [""])[0]) == "gpu_test"]
        if not tests:
            tests = self.select("gpu")
        if not tests:
            return [{"name": "gpu_test", "result": "missing", "group": "ops",
                     "note": "no gpu-labelled test in bundle/tests.json (built without CUDA?)"}]
        return [dict(self.run_test(t, "ops"), group="ops") for t in tests]

    # ---- train: GPU and CPU training from the same weights end with the same weights

    def equivalence(self):
        """tests/gpu/train_equivalence.py RUCHE WORKDIR (ctest's gpu_train_equivalence): `ruche
        train --device cuda --precision fp32 --init-weights W.npz` against `--device cpu`, same
        weights at the end; exit 0 equal, 77 skipped, anything else failed. Run here with this
        machine's python (numpy) and the ruche wrapper, so numpy loads outside the bundle's
        library path; the repository's copy first (it travels with every call), else the
        bundle's."""
        name = "train_equivalence"
        scripts = [p for p in (ROOT / "tests" / "gpu" / "train_equivalence.py",
                               self.bundle / "src" / "tests" / "gpu" / "train_equivalence.py")
                   if p.is_file()]
        if not scripts:
            return [{"name": name, "result": "missing", "group": "train",
                     "note": "tests/gpu/train_equivalence.py is in neither the repository nor "
                             "the bundle"}]
        if not self.has_gpu:
            return [self.no_gpu(name, "train")]
        rel_log = f"train/{name}.log"
        log = log_path(self.scratch, rel_log)
        cwd = self.work_dir(name)
        env = dict(os.environ, RUCHE_BINARY=self.ruche, RUCHE_SOURCE_DIR=str(self.bundle / "src"))
        cmd = [self.python(), str(scripts[0]), self.ruche, str(cwd)]
        code, seconds = run_logged(cmd, log, env, str(cwd), self.remaining() - 10)
        result = {0: "passed", SKIP_EXIT: "skipped"}.get(code, "failed")
        record = {"name": name, "result": result, "exit": code, "seconds": seconds,
                  "log": rel_log, "group": "train", "command": shlex.join(cmd)}
        if result != "passed":
            record["note"] = last_error_line(log)
        return [record]

    # ---- fashion: fashion_cnn to 92% on one GPU

    def find_fashion(self):
        """Fashion-MNIST's four idx files (raw or .gz): the DATA argument (a directory or an
        archive), RUCHE_FASHION_DIR, what an earlier call unpacked into SCRATCH/fashion-mnist,
        dist/fashion-mnist.tar.xz (make gpu-data), or Debian's /usr/share/datasets/fashion-mnist.
        Returns (directory or None, what was looked at)."""
        def complete(d):
            return d.is_dir() and all((d / f).is_file() or (d / (f + ".gz")).is_file()
                                      for f in FASHION_FILES)
        unpacked = self.scratch / "fashion-mnist"
        given = self.data_arg or os.environ.get("RUCHE_FASHION_DIR")
        if given:  # named explicitly: that or nothing
            path = pathlib.Path(given).resolve()
            if path.is_file():
                return self.unpack_fashion(path, unpacked), [str(path)]
            return (path if complete(path) else None), [str(path)]
        looked = []
        looked.append(str(unpacked))
        if complete(unpacked):
            return unpacked, looked
        archive = ROOT / "dist" / "fashion-mnist.tar.xz"
        looked.append(str(archive))
        if archive.is_file():
            return self.unpack_fashion(archive, unpacked), looked
        debian = pathlib.Path("/usr/share/datasets/fashion-mnist")
        looked.append(str(debian))
        return (debian if complete(debian) else None), looked

    def unpack_fashion(self, archive, into):
        """Unpacks an archive holding fashion-mnist/ (make gpu-data's) into SCRATCH; the
        directory that has the four files, or None."""
        shutil.rmtree(into, ignore_errors=True)
        tmp = self.scratch / "fashion-unpack"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") \
                else tar.extractall(tmp)
        for d in [tmp] + sorted(p for p in tmp.rglob("*") if p.is_dir()):
            if all((d / f).is_file() or (d / (f + ".gz")).is_file() for f in FASHION_FILES):
                d.rename(into)
                shutil.rmtree(tmp, ignore_errors=True)
                return into
        return None

    def fashion(self):
        name, rel_log = "fashion_cnn to 92% on one GPU", "fashion/fashion_cnn.log"
        data, looked = self.find_fashion()
        if data is None:
            self.exit_code = 2
            return [{"name": name, "result": "missing", "group": "fashion",
                     "note": "no Fashion-MNIST (looked at " + ", ".join(looked) + "): run `make "
                             "gpu-data` here and carry dist/fashion-mnist.tar.xz, or give DATA"}]
        if not self.has_gpu:
            return [self.no_gpu(name, "fashion")]
        epochs = os.environ.get("RUCHE_FASHION_EPOCHS", "15")
        out = self.work_dir("fashion")
        cmd = [self.ruche, "train", "--model", "fashion_cnn", "--data", str(data),
               "--device", "cuda", "--batch-size", "128", "--epochs", epochs,
               "--no-checkpoint", "--out", str(out)]
        cmd += shlex.split(os.environ.get("RUCHE_FASHION_FLAGS", ""))
        log = log_path(self.scratch, rel_log)
        code, seconds = run_logged(cmd, log, os.environ.copy(), str(out), self.remaining() - 10)
        metrics = read_metrics(out / "metrics.jsonl")
        test = [r for r in metrics if split_of(r) == "test"]
        val = [r for r in metrics if split_of(r) == "val"]
        train = [r for r in metrics if split_of(r) == "train" and "img_per_s" in r]
        record = {"name": name, "exit": code, "seconds": seconds, "log": rel_log,
                  "group": "fashion", "command": shlex.join(cmd), "data": str(data),
                  "val_acc": [round(r["acc"], 4) for r in val if "acc" in r]}
        if train:
            rates = sorted(r["img_per_s"] for r in train)
            record["img_per_s_median"] = rates[len(rates) // 2]
            peaks = [r["gpu_peak_mib"] for r in train if "gpu_peak_mib" in r]
            if peaks:
                record["gpu_peak_mib"] = max(peaks)
        if test and "acc" in test[-1]:
            record["test_acc"] = test[-1]["acc"]
        if code != 0:
            record.update(result="failed", note=last_error_line(log))
        elif "test_acc" not in record:
            record.update(result="failed", note="no test accuracy in metrics.jsonl")
        elif record["test_acc"] < FASHION_TARGET:
            record.update(result="failed", note=f"test accuracy {100 * record['test_acc']:.2f}% "
                                                f"< {100 * FASHION_TARGET:.0f}%")
        else:
            record.update(result="passed", note=f"test accuracy {100 * record['test_acc']:.2f}% "
                                                f"in {seconds:.0f} s")
        return [record]

    # ---- bench: benchmarks/gpu_throughput.py

    def bench(self):
        """The throughput benchmark, within what is left of the stage; its results go to
        benchmarks/results/ here and are copied into OUTDIR (so they come back)."""
        name, rel_log = "gpu_throughput.py", "bench/gpu_throughput.log"
        log = log_path(self.scratch, rel_log)
        budget = self.remaining() - 30
        cmd = [self.python(), str(ROOT / "benchmarks" / "gpu_throughput.py"), self.ruche,
               "--budget-s", f"{budget:.0f}", "--results-dir", str(ROOT / "benchmarks" / "results")]
        cmd += shlex.split(os.environ.get("RUCHE_BENCH_ARGS", ""))
        if budget < 60:
            return [{"name": name, "result": "not_run", "group": "bench",
                     "note": f"only {budget:.0f} s left of the stage"}]
        code, seconds = run_logged(cmd, log, os.environ.copy(), str(ROOT), self.remaining() - 5)
        text = log.read_text(errors="replace")
        record = {"name": name, "exit": code, "seconds": seconds, "log": rel_log, "group": "bench",
                  "command": shlex.join(cmd)}
        wrote = re.search(r"gpu_throughput: wrote (\S+)\.json and", text)
        if code != 0:
            record.update(result="failed", note=last_error_line(log))
        elif "no CUDA device" in text and not wrote:
            record.update(result="skipped", note="no CUDA device")
        else:
            record["result"] = "passed"
        if wrote:
            files = []
            self.outdir.mkdir(parents=True, exist_ok=True)
            for ext in (".json", ".md"):
                src = pathlib.Path(wrote.group(1) + ext)
                if src.is_file():
                    shutil.copy2(src, self.outdir / src.name)
                    files.append(src.name)
            record["files"] = files
            md = pathlib.Path(wrote.group(1) + ".md")
            if md.is_file():
                table = [l for l in md.read_text().splitlines() if l.startswith("|")]
                failures = [l for l in md.read_text().splitlines() if l.startswith("- ")]
                record["table"] = table + ([""] + failures if failures else [])
        return [record]


def run_stage(stage, scratch, outdir, facts, data_arg):
    deadline = time.monotonic() + STAGE_BUDGET_S - float(os.environ.get("RUCHE_GPU_CHECK_SPENT", "0"))
    runner = Runner(scratch, outdir, deadline, facts, data_arg)
    results = []
    stopped = None  # the gate that failed
    for part in STAGES[stage]:
        group = next(g for g in GROUPS if part in STAGES[g])
        if stopped:
            results.append({"name": part, "group": group, "result": "not_run",
                            "note": f"stopped: {stopped['name']} failed "
                                    f"(logs/{stopped.get('log', '')})"})
        elif part == "devices":
            results.append(dict(runner.devices(), group=group))
        elif part == "train_step":
            results.append(dict(runner.train_step(), group=group))
        elif part == "unit":
            results.append(dict(runner.generate_references(), group=group))
            for test in runner.select("unit"):
                results.append(dict(runner.run_test(test, "unit"), group=group))
        else:
            results.extend(getattr(runner, part)())
        if part in GATES and results[-1].get("result") == "failed":
            stopped = results[-1]
        # Each group's results are saved as they finish, so a later stage or a killed run keeps them.
        save_group_results(scratch, results)
    return results, runner.exit_code


def save_group_results(scratch, results):
    groups = {}
    for r in results:
        groups.setdefault(r["group"], []).append(r)
    for group, items in groups.items():
        path = scratch / "results" / f"{group}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items, indent=1))


def verdict(results, facts):
    failed = [r for r in results if r.get("result") == "failed"]
    not_run = [r for r in results if r.get("result") in ("not_run", "missing")]
    if failed:
        return "FAIL", failed, not_run
    if not facts.get("cuda_devices"):
        return "NO CUDA DEVICE (gpu tests skipped; nothing ran on a GPU)", failed, not_run
    if not_run:
        return "INCOMPLETE", failed, not_run
    return "PASS", failed, not_run


def write_report(scratch, outdir, stage, facts):
    results = []
    for group in GROUPS:
        path = scratch / "results" / f"{group}.json"
        if path.exists():
            results.extend(json.loads(path.read_text()))
    word, failed, not_run = verdict(results, facts)
    outdir.mkdir(parents=True, exist_ok=True)
    report = {"verdict": word, "stage": stage, "facts": facts, "tests": results}
    (outdir / "results.json").write_text(json.dumps(report, indent=1))

    lines = [f"# ruche GPU check: {word}", "",
             f"Stage run: `{stage}`; the report covers every stage run on this machine so far "
             f"({', '.join(g for g in GROUPS if any(r['group'] == g for r in results)) or 'none'})"
             ".",
             "", "## Machine", ""]
    for key in ("gpu", "driver", "cuda_driver_api", "torch", "torch_cuda", "cudnn_torch",
                "nccl_torch", "nvidia_packages", "cuda_libraries_used", "ruche_versions", "os",
                "glibc", "cpus", "bundle"):
        if facts.get(key) not in (None, "", []):
            value = facts[key]
            if isinstance(value, list):
                value = ", ".join(map(str, value))
            lines.append(f"- {key}: {value}")
    lines += ["", "## Tests", "",
              "| group | test | result | cases (pass/fail/skip) | seconds | note |",
              "|---|---|---|---|---|---|"]
    for r in results:
        c = r.get("cases")
        cases = f"{c['passed']}/{c['failed']}/{c['skipped']}" if c else ""
        note = str(r.get("note", "")).replace("|", "/")[:160]
        lines.append(f"| {r['group']} | {r['name']} | {r.get('result')} | {cases} | "
                     f"{r.get('seconds', '')} | {note} |")
    for r in results:
        if r.get("failed_cases"):
            lines += ["", f"Failed in {r['name']}: " + ", ".join(r["failed_cases"][:30])]
        if r.get("result") == "failed" and not r.get("failed_cases"):
            lines += ["", f"{r['name']} failed (exit {r.get('exit')}); see logs/{r.get('log')}"]
        if r.get("skip_reasons"):
            lines += ["", f"Skips in {r['name']}: " + "; ".join(r["skip_reasons"])]
        if r.get("name") == "ruche devices":
            lines += ["", "`ruche devices`:", "```", *r.get("output", []), "```"]
        if r.get("val_acc"):
            lines += ["", f"{r['name']}: validation accuracy by epoch "
                          + ", ".join(f"{100 * a:.2f}" for a in r["val_acc"])
                          + (f"; median {r['img_per_s_median']:.0f} img/s"
                             if "img_per_s_median" in r else "")
                          + (f"; peak {r['gpu_peak_mib']:.0f} MiB" if "gpu_peak_mib" in r else "")
                          + f"; `{r.get('command', '')}`"]
        if r.get("table"):
            lines += ["", f"{r['name']} ({', '.join(r.get('files', []))}, beside this file):", "",
                      *r["table"]]
    if not_run:
        lines += ["", "Not run or missing: " + ", ".join(f"{r['name']} ({r.get('note', '')})"
                                                        for r in not_run)]
    for r in results:
        if r.get("case_results"):
            lines += ["", f"## Every case of {r['name']} ({r['group']})", ""]
            order = {"failed": 0, "skipped": 1, "passed": 2}
            for case, (result, seconds) in sorted(r["case_results"].items(),
                                                  key=lambda kv: (order.get(kv[1][0], 3), kv[0])):
                lines.append(f"- {result} {case} ({seconds:.3f} s)")
    lines += ["", "Logs: logs.tar.gz (one file per test, gtest JSON beside each)."]
    (outdir / "summary.md").write_text("\n".join(lines) + "\n")

    with tarfile.open(outdir / "logs.tar.gz", "w:gz") as tar:
        tar.add(scratch / "logs", arcname="logs")
    return word, failed


def main():
    stage, scratch, outdir = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    data_arg = sys.argv[4] if len(sys.argv) > 4 else None
    facts = json.loads((scratch / "facts.json").read_text())
    if stage not in STAGES:
        print(f"gpu_check: unknown stage '{stage}' ({', '.join(STAGES)})", file=sys.stderr)
        return 2
    results, exit_code = run_stage(stage, scratch, outdir, facts, data_arg)
    word, _ = write_report(scratch, outdir, stage, facts)
    print(f"gpu_check: {word}; report in {outdir}")
    # The verdict covers every stage so far; the exit status, this stage.
    return 1 if any(r.get("result") == "failed" for r in results) else exit_code


if __name__ == "__main__":
    sys.exit(main())
