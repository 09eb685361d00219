#!/usr/bin/env python3
"""The GPU check's runner; benchmarks/gpu_check.sh is its front door (usage there).

Runs PLAN's steps in order, each under its own time budget: a step's processes run in their own
process group, killed as a group when the budget runs out, and the next step starts anyway. After
every step, and every gtest case, OUT/results.json and OUT/summary.md are rewritten whole (a temp
file renamed over the old one), so a check killed at any moment, even by SIGKILL, leaves both
complete, listing what finished. Python's standard library only: torch is imported by the steps'
own scripts, in their own processes.

RUCHE_GPU_CHECK_PLAN=plan.json replaces PLAN (tests/tools/gpu_check_stub.py drives the runner
with stub steps that pass, fail, hang, crash or skip, and fake bundles with and without
bin/ruche-previous; tests/tools/gpu_throughput_plumbing.py tests throughput_args and
throughput_key).

A bundle packed with `make gpu-bundle PREVIOUS=OLD_BUNDLE` holds bin/ruche-previous (and a
"previous:" line in its MANIFEST): step bundle wraps it as {ruche_previous}, and step throughput
runs benchmarks/gpu_throughput.py --previous on it (throughput_args), so its key figure and
summary.md give new / previous from one command on one card.
"""
import argparse
import json
import os
import pathlib
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository, as carried to this machine
COMMAND1_LIMIT_S = 300  # command 1: everything, within 5 minutes
RERUN_LIMIT_S = 180  # command 2 (--rerun-failed): within 3 minutes
SKIP_EXIT = 77  # a script's "cannot run here" (ctest's SKIP_RETURN_CODE habit)
SETTLED = ("pass", "skip")  # what --rerun-failed does not run again
FASHION_TARGET = 0.92
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Each step: name, budget_s, what; then how it runs: "gtest" (a gtest command, streamed per
# case), "command" (exit 0 pass, 77 skip, else fail; "key" a regex whose matches make the key
# figure), or neither (the method step_<name>). {python} {root} {work} {bundle} {ruche} {mpirun}
# are filled in; "gpu": skipped when step bundle saw no CUDA device.
PLAN = [
    {"name": "bundle", "budget_s": 20,
     "what": "unpack dist/ruche-gpu-bundle.tar.xz; nvidia-smi; `ruche devices` sees the card"},
    {"name": "ops", "budget_s": 45, "case_s": 15, "gtest": ["{bundle}/bin/gpu_test"],
     "filter": "-*Nccl*", "what": "gpu_test's CUDA op cases but NCCL's, 15 s a case"},
    {"name": "ops_nccl", "budget_s": 15, "case_s": 10, "gtest": ["{bundle}/bin/gpu_test"],
     "filter": "*Nccl*", "what": "gpu_test's NCCL cases (a world of one)"},
    {"name": "equivalence", "budget_s": 30,
     "command": ["{python}", "{root}/tests/gpu/train_equivalence.py", "{ruche}", "{work}"],
     "key": r"^(?:agree|FAIL: disagree): (\w+) worst norm-relative error (\S+)",
     "what": "GPU vs CPU training, same weights: fp32 (1e-3), bf16 and fp16 (3e-2)"},
    {"name": "nccl_world", "budget_s": 30,
     "command": ["{python}", "{root}/tests/gpu/nccl_world_of_one.py", "{ruche}", "{mpirun}",
                 "{work}"],
     "key": r"^(?:agree|FAIL: disagree): (\S+) against the plain run: (.*)$",
     "what": "--comm nccl (mpirun -np 1 with the bundle's mpirun, and alone) = the plain run"},
    {"name": "fashion", "budget_s": 70, "gpu": True,
     "what": "fashion_cnn on Fashion-MNIST toward >= 92% test accuracy, epochs that fit"},
    # With bundle/bin/ruche-previous (make gpu-bundle PREVIOUS=OLD_BUNDLE) the same 70 s go to
    # bf16 alone: ruche, the previous ruche and PyTorch eager, one process each per round, in
    # rotated order, as many rounds (up to 4) as fit; tf32 and torch.compile are left out, as
    # three sides of two precisions would not fit twice in 70 s (a process: start, cuDNN's
    # search, 40 steps, an estimated 10-15 s on an H100, not yet measured). The command's 295 s
    # of 300 leave no room for a larger budget.
    {"name": "throughput", "budget_s": 70, "gpu": True,
     "what": "ResNet-50 224 px batch 256 bf16 and tf32: ruche vs PyTorch eager (AMP, "
             "channels_last); torch.compile if time is left. With bundle/bin/ruche-previous: "
             "bf16 only, ruche / previous ruche / eager in alternating rounds that fit"},
    {"name": "time", "budget_s": 15, "gpu": True, "out_file": "ruche_time.txt",
     "command": ["{ruche}", "time", "--model", "resnet50", "--input", "3,224,224",
                 "--batch-size", "128", "--iterations", "10", "--device", "cuda",
                 "--precision", "bf16"],
     "key": r"^(average forward-backward: +\S+ ms|throughput: \S+ images/s)",
     "what": "`ruche time --device cuda`: ResNet-50 bf16 batch 128, per layer"},
]


class Failed(Exception):
    """A step cannot go on; its message becomes the step's note."""


def write_atomic(path, text):
    """Writes path whole or not at all: a kill leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # a SIGKILL keeps the page cache: rename suffices, no fsync


def kill_group(proc):
    """Kills proc and everything it started (its own session): mpirun's ranks, a script's ruche."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def last_line(text, pattern=r"error|exception|abort|fatal|disagree|killed"):
    """The line that says why: the last one matching pattern (if any), else the last one."""
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("$ ")]
    for line in reversed(lines):
        if pattern and re.search(pattern, line, re.I):
            return line[:200]
    return lines[-1][:200] if lines else "(no output)"


def gtest_list(text):
    """Full case names from --gtest_list_tests ("Suite." then "  Case  # GetParam() = ...")."""
    names, suite = [], ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("$ "):
            continue
        if not line.startswith(" "):
            suite = line.split("#")[0].strip()
        elif suite.endswith(".") and "DISABLED_" not in suite + line:  # gtest runs them not
            names.append(suite + line.split("#")[0].strip())
    return names


class Check:
    def __init__(self, out, plan, command):
        self.out = out
        self.plan = plan
        self.scratch = pathlib.Path(os.environ.get("RUCHE_GPU_SCRATCH", "/tmp/ruche-gpu"))
        self.logs = self.scratch / "logs"
        self.python = sys.executable  # the check's python: the machine's, with its torch
        self.command = command
        self.started = time.strftime("%Y-%m-%d %H:%M:%S")
        self.places = {"python": self.python, "root": str(ROOT)}
        self.bundle_env = None  # env.sh's environment, once step bundle has loaded it
        self.facts = {}
        self.records = [{"name": s["name"], "budget_s": s["budget_s"], "result": "not-run",
                         "seconds": None, "key": "", "note": ""} for s in plan]

    # ---- results on disk

    def record(self, name):
        return next(r for r in self.records if r["name"] == name)

    def verdict(self):
        running = [r["name"] for r in self.records if r["result"] == "running"]
        bad = [r["name"] for r in self.records if r["result"] not in SETTLED]
        if running:
            return f"RUNNING {running[0]} (or killed there)"
        return "PASS" if not bad else "FAIL: " + ", ".join(bad)

    def save(self):
        """results.json and summary.md, each replaced whole."""
        self.out.mkdir(parents=True, exist_ok=True)
        data = {"verdict": self.verdict(), "command": self.command, "started": self.started,
                "facts": self.facts, "steps": self.records}
        write_atomic(self.out / "results.json", json.dumps(data, indent=1) + "\n")
        write_atomic(self.out / "summary.md", self.summary())

    def summary(self):
        """One screen: verdict, card, a line per step; then failed cases, the throughput table."""
        f = self.facts
        lines = [f"# ruche GPU check: {self.verdict()}", "",
                 f"`{self.command}`, started {self.started}. Card: {f.get('card', '?')}; "
                 f"{f.get('versions', 'ruche versions ?')}."
                 + (f" Bundle {f.get('commit', '?')}; previous ruche: {f['previous']}."
                    if "previous" in f else "")
                 + (f" Earlier run's card: {f['earlier_card']}." if "earlier_card" in f else ""),
                 "",
                 "| step | result | seconds | budget | key figure |", "|---|---|---|---|---|"]
        for r in self.records:
            key = r["key"] + ("; " if r["key"] and r["note"] else "") + r["note"]
            key = key.replace("|", "/")[:150]
            mark = " (earlier run)" if r.get("earlier") else ""
            sec = "" if r["seconds"] is None else f"{r['seconds']:.0f}"
            lines.append(f"| {r['name']} | {r['result']}{mark} | {sec} | {r['budget_s']} | {key} |")
        for r in self.records:
            bad = [(c, v) for c, v in (r.get("cases") or {}).items()
                   if v["result"] not in SETTLED]
            if bad:
                lines += ["", f"{r['name']}, cases not passed:"]
                lines += [f"- {v['result']} {c}: {v.get('note', '')}"[:160] for c, v in bad[:8]]
                lines += [f"- ... {len(bad) - 8} more (results.json)"] if len(bad) > 8 else []
            if r.get("table"):
                lines += ["", f"{r['name']} ({', '.join(r.get('files', []))}):", ""] + r["table"]
        lines += ["", "Logs: logs.tar.gz (one per step). Rerun what failed, after a fix: copy "
                      "results.json into the tree, `bash benchmarks/gpu_check.sh OUT "
                      "--rerun-failed results.json`."]
        return "\n".join(lines) + "\n"

    def pack_logs(self):
        if not self.logs.is_dir():
            return
        tmp = self.out / "logs.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(self.logs, arcname="logs")
        os.replace(tmp, self.out / "logs.tar.gz")

    # ---- running things

    def run(self, cmd, log, deadline, env=None, cwd=None):
        """Runs cmd in its own process group, output appended to log, killed at deadline.
        Returns (exit code or "timeout", the output)."""
        cmd = [str(c) for c in cmd]
        with open(log, "a") as f:
            f.write("$ " + shlex.join(cmd) + "\n")
            start = f.tell()
            f.flush()
            try:
                proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                        cwd=cwd, start_new_session=True)
            except OSError as e:
                f.write(f"[gpu_check] could not start: {e}\n")
                return 127, str(e)
            try:
                code = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                code = "timeout"
            finally:
                kill_group(proc)  # also what it left running in the background
        if code == "timeout":
            with open(log, "a") as f:
                f.write("\n[gpu_check] killed: the step's time budget ran out\n")
        with open(log) as f:
            f.seek(start)
            return code, f.read()

    def fill(self, args, work):
        places = dict(self.places, work=str(work))
        try:
            return [a.format(**places) for a in args]
        except KeyError as e:
            raise Failed(f"needs {{{e.args[0]}}}: the bundle lacks it or did not load (step "
                         "bundle)")

    def work_dir(self, name):
        path = self.scratch / "work" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def env(self):
        """For the steps' scripts: this machine's environment (their numpy and torch), with this
        python as RUCHE_PYTHON; the ruche wrapper brings the bundle's library path itself."""
        return dict(os.environ, RUCHE_PYTHON=self.python)

    # ---- the steps

    def run_steps(self, names):
        for step in self.plan:
            if step["name"] in names:
                self.run_step(step)

    def run_step(self, step):
        rec = self.record(step["name"])
        rec.update(result="running", seconds=None, key="", note="")
        rec.pop("earlier", None)
        self.save()
        start = time.monotonic()
        deadline = start + step["budget_s"]
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{step['name']}.log"
        log.unlink(missing_ok=True)
        try:
            if step.get("gpu") and self.facts.get("cuda") is False:
                rec.update(result="skip", note="no CUDA device")
            elif "gtest" in step:
                self.gtest_step(step, rec, deadline, log)
            elif "command" in step:
                self.command_step(step, rec, deadline, log)
            else:
                getattr(self, "step_" + step["name"])(rec, deadline, log)
        except Failed as e:
            rec.update(result="fail", note=str(e))
        except Exception as e:  # a bug of the check's own: this step fails, the next ones run
            rec.update(result="fail", note=f"gpu_check: {type(e).__name__}: {e}")
        rec["seconds"] = round(time.monotonic() - start, 1)
        self.save()
        self.pack_logs()
        print(f"gpu_check: {rec['name']}: {rec['result']} in {rec['seconds']:.0f} s "
              f"(budget {step['budget_s']}) {rec['key']} {rec['note']}".rstrip(), flush=True)

    def command_step(self, step, rec, deadline, log):
        work = self.work_dir(step["name"])
        code, text = self.run(self.fill(step["command"], work), log, deadline, self.env(), work)
        rec["exit"] = code
        rec["result"] = ("timeout" if code == "timeout" else
                         {0: "pass", SKIP_EXIT: "skip"}.get(code, "fail"))
        if step.get("key"):
            rec["key"] = ", ".join(" ".join(g for g in m.groups() if g)
                                   for m in re.finditer(step["key"], text, re.M))
        elif rec["result"] == "pass":
            rec["key"] = last_line(text, None)
        if rec["result"] == "timeout":
            rec["note"] = f"killed at its {step['budget_s']} s budget"
        elif rec["result"] != "pass":
            rec["note"] = f"exit {code}: " + last_line(text, r"error|exception|abort|fatal|"
                                                             r"disagree|skipped")
        if step.get("out_file"):
            write_atomic(self.out / step["out_file"], text)

    # -- gtest, streamed per case

    def gtest_step(self, step, rec, deadline, log):
        """One process runs the cases; a case that hangs past case_s is killed, one that fails or
        kills the process ends it, and a fresh process goes on from the next case (so a sticky
        CUDA error costs only the case that caused it)."""
        cmd = self.fill(step["gtest"], self.scratch)
        env = dict(self.bundle_env or os.environ, RUCHE_PYTHON=self.python)
        work = self.work_dir(step["name"])
        code, text = self.run(cmd + ["--gtest_list_tests", f"--gtest_filter={step['filter']}"],
                              log, deadline, env, work)
        names = gtest_list(text)
        if code != 0 or not names:
            raise Failed(f"could not list the cases (exit {code}): {last_line(text)}")
        rec["cases"] = cases = {}
        stop = None
        while not stop:
            todo = [n for n in names if n not in cases]
            if not todo:
                break
            if time.monotonic() >= deadline:
                stop = "the step's budget ran out"
            else:
                stop = self.gtest_process(cmd, todo, cases, env, work, log, deadline,
                                          step["case_s"])
        for n in names:
            cases.setdefault(n, {"result": "not-run", "note": stop})
        counts = {}
        for c in cases.values():
            counts[c["result"]] = counts.get(c["result"], 0) + 1
        rec["key"] = ", ".join(f"{counts[k]} {k}" for k in
                               ("pass", "fail", "timeout", "skip", "not-run") if k in counts)
        rec["key"] += f" of {len(names)} cases"
        if time.monotonic() >= deadline and counts.get("not-run"):
            rec["result"] = "timeout"
        elif counts.get("fail") or counts.get("timeout") or counts.get("not-run"):
            rec["result"] = "fail"
        else:
            rec["result"] = "pass" if counts.get("pass") else "skip"

    def gtest_process(self, cmd, todo, cases, env, cwd, log, deadline, case_s):
        """One gtest process over todo; records each case as its line comes. Returns None to go
        on from the next case, or why the rest cannot run."""
        before = len(cases)
        with open(log, "a") as f:
            args = cmd + ["--gtest_filter=" + ":".join(todo)]
            f.write(f"$ {shlex.join(args[:1])} --gtest_filter=({len(todo)} cases)\n")
            f.flush()
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=env, cwd=cwd, start_new_session=True, text=True,
                                    errors="replace", bufsize=1)
            lines = queue.Queue()
            threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
            current, notes, limit = None, [], time.monotonic() + case_s
            try:
                while True:
                    try:
                        line = lines.get(timeout=max(min(limit, deadline) - time.monotonic(), 0))
                    except queue.Empty:
                        why = ("the step's budget ran out" if deadline <= limit
                               else f"killed after {case_s} s")
                        f.write(f"\n[gpu_check] {current or 'between cases'}: {why}\n")
                        if not current:
                            return f"the process hung between cases: {why}"
                        cases[current] = {"result": "timeout", "note": why}
                        return None if deadline > limit else why
                    if line is None:
                        code = proc.wait()
                        if current:
                            cases[current] = {"result": "fail", "note": "the process died "
                                              f"(exit {code}) in this case: " + " ".join(notes)}
                            f.write(f"\n[gpu_check] {current}: the process died (exit {code})\n")
                        if len(cases) == before:
                            return f"the process (exit {code}) ran no case"
                        return None
                    f.write(line)
                    f.flush()
                    # (searched, not matched: a test's output may leave a line unfinished;
                    # a parameterised case fails as "NAME, where GetParam() = ... (N ms)")
                    run = re.search(r"\[ RUN      \] (\S+)", line)
                    end = re.search(r"\[ +(OK|FAILED|SKIPPED) +\] ([^\s,]+)(?:,.*)? \((\d+) ms\)",
                                    line)
                    if run:
                        current, notes, limit = run.group(1), [], time.monotonic() + case_s
                    elif end and end.group(2) == current:
                        result = {"OK": "pass", "FAILED": "fail", "SKIPPED": "skip"}[end.group(1)]
                        cases[current] = {"result": result, "seconds": int(end.group(3)) / 1e3}
                        if result != "pass" and notes:
                            cases[current]["note"] = " ".join(notes)[:200]
                        current, limit = None, time.monotonic() + case_s
                        self.save()  # results stream out case by case
                        if result == "fail":
                            return None  # a fresh process for the rest
                    elif current and line.strip() and len(notes) < 3:
                        notes.append(line.strip())
            finally:
                kill_group(proc)

    # -- bundle: unpacked, loaded, the card seen

    def step_bundle(self, rec, deadline, log):
        archive = pathlib.Path(os.environ.get("RUCHE_GPU_BUNDLE",
                                              ROOT / "dist" / "ruche-gpu-bundle.tar.xz"))
        if not archive.is_file():
            raise Failed(f"no {archive}: run `make gpu-bundle` on the build machine, carry dist/")
        bundle = self.scratch / "bundle"
        shutil.rmtree(bundle, ignore_errors=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        code, text = self.run(["tar", "-xJf", archive, "-C", self.scratch], log, deadline)
        if code != 0:
            raise Failed(f"could not unpack {archive.name}: {last_line(text)}")
        out = subprocess.run(["bash", "-c", f". {shlex.quote(str(bundle))}/env.sh && env -0"],
                             capture_output=True, text=True, env=self.env(),
                             timeout=max(deadline - time.monotonic(), 1))
        if out.returncode != 0:
            raise Failed(f"bundle/env.sh failed: {last_line(out.stderr)}")
        env = dict(item.split("=", 1) for item in out.stdout.split("\0") if "=" in item)
        # Where cuDNN, cuBLAS and NCCL came from (system, pip, /usr/local/cuda), and any library
        # the loader cannot find (bundle_env.sh's ruche_env_check): named here, not as a crash.
        verbose = f"RUCHE_ENV_VERBOSE=1 . {shlex.quote(str(bundle))}/env.sh"
        code, where = self.run(["bash", "-c", verbose], log, deadline, self.env())
        self.facts["cuda_libraries"] = [l.strip() for l in where.splitlines() if "<-" in l]
        missing = [l for l in where.splitlines() if "not found" in l and "<-" not in l]
        if missing:
            raise Failed(missing[0].strip())
        # Open MPI's plugins wherever the bundle has them (older bundles put them one level deeper,
        # lib/openmpi3/lib/openmpi3): without them its mpirun knows none of its options.
        plugins = sorted(bundle.glob("lib/**/mca_schizo_ompi.so"))
        if plugins:
            env.update(OMPI_MCA_mca_base_component_path=str(plugins[0].parent),
                       OPAL_PKGLIBDIR=str(plugins[0].parent))
        self.bundle_env = env
        self.places.update(bundle=str(bundle), ruche=self.wrapper("ruche", env))
        if (bundle / "bin" / "ruche-previous").exists():  # make gpu-bundle PREVIOUS=...
            self.places["ruche_previous"] = self.wrapper("ruche-previous", env)
            self.facts.update(manifest_facts(bundle / "MANIFEST"))
        if (bundle / "bin" / "mpirun").exists():
            self.places["mpirun"] = self.wrapper("mpirun", env)
        code, smi = self.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], log, deadline)
        card = smi.strip().splitlines()[0] if code == 0 and smi.strip() else "nvidia-smi failed"
        code, text = self.run([self.places["ruche"], "devices"], log, deadline, self.env())
        listed = [l for l in text.splitlines() if l.startswith("cuda:")]
        versions = [l for l in text.splitlines() if l.startswith("CUDA runtime")]
        nodev = [l for l in text.splitlines() if l.startswith("no CUDA device")]
        self.facts.update(card=card, versions=versions[0] if versions else "", cuda=bool(listed))
        rec["key"] = (listed or nodev or [last_line(text)])[0]
        rec["result"] = "pass" if code == 0 and listed else "fail"

    def wrapper(self, name, env):
        """SCRATCH/bin/NAME: the bundle's NAME with env.sh's environment baked in, for scripts
        that must load numpy and torch outside the bundle's library path."""
        path = self.scratch / "bin" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["#!/bin/sh", "# written by benchmarks/gpu_check.py"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())
                  if os.environ.get(k) != v and re.fullmatch(r"[A-Za-z_]\w*", k)
                  and k not in ("_", "PWD", "OLDPWD", "SHLVL")]
        lines.append(f'exec {shlex.quote(str(self.scratch / "bundle" / "bin" / name))} "$@"')
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)
        return str(path)

    # -- fashion: fashion_cnn toward 92%, as many epochs as the budget allows

    def fashion_data(self, log, deadline):
        """The four idx files: RUCHE_FASHION_DIR, else dist/fashion-mnist.tar.xz (carried with
        the bundle; unpacked here), else Debian's /usr/share/datasets/fashion-mnist."""
        def complete(d):
            return all((d / f).is_file() or (d / (f + ".gz")).is_file() for f in FASHION_FILES)
        given = os.environ.get("RUCHE_FASHION_DIR")
        if given:
            return pathlib.Path(given)
        archive = ROOT / "dist" / "fashion-mnist.tar.xz"
        if archive.is_file():
            self.run(["tar", "-xJf", archive, "-C", self.scratch], log, deadline)
            if complete(self.scratch / "fashion-mnist"):
                return self.scratch / "fashion-mnist"
        debian = pathlib.Path("/usr/share/datasets/fashion-mnist")
        if complete(debian):
            return debian
        raise Failed(f"no Fashion-MNIST: {archive} is missing (make gpu-bundle makes it)")

    def step_fashion(self, rec, deadline, log):
        data = self.fashion_data(log, deadline)
        ruche = self.fill(["{ruche}"], self.scratch)[0]
        train = [ruche, "train", "--model", "fashion_cnn", "--data", data, "--device", "cuda",
                 "--no-checkpoint"]
        epochs = os.environ.get("RUCHE_FASHION_EPOCHS")
        if not epochs:  # the speed of 120 steps says how many epochs fit
            probe = self.work_dir("fashion-probe")
            self.run(train + ["--max-steps", "120", "--log-every", "40", "--out", probe], log,
                     deadline, self.env(), probe)
            rates = [r["img_per_s"] for r in read_jsonl(probe / "metrics.jsonl")
                     if r.get("split") == "train" and "img_per_s" in r][1:]
            if not rates:
                raise Failed("the 120-step probe logged no speed: " + last_line(log.read_text()))
            epoch_s = 1.4 * 60000 / min(rates)  # 1.4: validation, evaluation, start
            epochs = str(max(1, min(10, int((deadline - time.monotonic() - 8) / epoch_s))))
        out = self.work_dir("fashion")
        code, text = self.run(train + ["--epochs", epochs, "--out", out], log, deadline,
                              self.env(), out)
        try:
            acc = json.loads((out / "eval-test.json").read_text())["accuracy"]
        except (OSError, ValueError, KeyError):
            acc = None
        val = [r["acc"] for r in read_jsonl(out / "metrics.jsonl")
               if r.get("split") == "val" and "acc" in r]
        rec["key"] = (f"test {100 * acc:.2f}% after {epochs} epochs" if acc is not None else
                      f"{len(val)} of {epochs} epochs"
                      + (f", val {100 * val[-1]:.2f}%" if val else ""))
        if code == "timeout":
            rec["result"] = "timeout"
        elif acc is None:
            rec.update(result="fail", note=last_line(text))
        else:
            rec["result"] = "pass" if acc >= FASHION_TARGET else "fail"

    # -- throughput: benchmarks/gpu_throughput.py, ResNet-50, within the budget

    def step_throughput(self, rec, deadline, log):
        results = self.scratch / "results"
        budget = int(deadline - time.monotonic() - 5)  # it writes its results before the kill
        previous = self.places.get("ruche_previous")
        notes = ([f"new ruche: bundle {self.facts.get('commit', '?')}; previous ruche: "
                  f"{self.facts.get('previous', '?')}"] if previous else [])
        cmd = [self.python, ROOT / "benchmarks" / "gpu_throughput.py",
               *throughput_args(self.fill(["{ruche}"], self.scratch)[0], previous, budget,
                                results, notes)]
        code, text = self.run(cmd, log, deadline, self.env(), ROOT)
        wrote = re.search(r"gpu_throughput: wrote (\S+)\.json and", text)
        if not wrote:
            result = "skip" if "no CUDA device" in text else "fail"
            rec.update(result="timeout" if code == "timeout" else result, note=last_line(text))
            return
        base = pathlib.Path(wrote.group(1))
        rec["files"] = []
        for ext in (".json", ".md"):
            shutil.copy2(f"{base}{ext}", self.out / (base.name + ext))
            rec["files"].append(base.name + ext)
        rec["table"] = [l for l in pathlib.Path(f"{base}.md").read_text().splitlines()
                        if l.startswith("|")]
        rows = json.loads(pathlib.Path(f"{base}.json").read_text())["results"]
        rec["key"], ok, note = throughput_key(rows)
        if note:
            rec["note"] = note
        rec["result"] = "pass" if ok and code == 0 else "fail"


def throughput_args(ruche, previous, budget_s, results, notes=()):
    """gpu_throughput.py's arguments in the throughput step. Without a previous ruche: bf16 and
    tf32, ruche and PyTorch eager once each, torch.compile with what is left. With one
    (bundle/bin/ruche-previous): bf16 only, ruche / previous / eager in up to 4 rounds, each
    started only when it fits (gpu_throughput.run_rounds)."""
    model = ["--models", "resnet50", "--batches", "256"]
    tail = ["--windows", "3", "--budget-s", str(budget_s), "--results-dir", str(results)]
    if not previous:
        return [ruche, *model, "--precisions", "bf16", "tf32", "--sides", "ruche", "torch",
                "torch_compile", *tail]
    return [ruche, *model, "--precisions", "bf16", "--sides", "ruche", "torch", "--previous",
            previous, "--rounds", "4", *tail, *[a for n in notes for a in ("--note", n)]]


def throughput_key(rows):
    """(key figure, whether every row has ruche's rate, note) from gpu_throughput's results: per
    precision ruche's img/s and its ratio to PyTorch eager; with a previous ruche also new /
    previous, pooled and per round. The previous ruche failing is a note, not a failure."""
    keys, ok, notes = [], True, []
    for row in rows:
        ruche_side, vs = row["best"].get("ruche") or {}, row.get("ratio_vs_torch")
        ok = ok and "img_per_s" in ruche_side
        rate = (f"{ruche_side['img_per_s']['median']:.0f} img/s" if "img_per_s" in ruche_side
                else "failed")
        key = f"{row['precision']} {rate}" + (f" = {vs:.2f}x vs eager" if vs else "")
        if "ratio_vs_previous" in row:
            prev = row["best"].get("ruche_previous") or {}
            per_round = row.get("ratio_vs_previous_rounds") or []
            if row["ratio_vs_previous"] is not None:
                key += (f", new/previous {row['ratio_vs_previous']:.2f}x"
                        + (f" (rounds {', '.join(f'{x:.2f}' for x in per_round)})"
                           if per_round else ""))
            elif "img_per_s" not in prev:
                key += ", previous failed"
                notes.append(f"previous ruche {row['precision']}: "
                             f"{prev.get('error', 'not run')}"[:150])
        keys.append(key)
    return ", ".join(keys), ok, "; ".join(notes)


def manifest_facts(path):
    """The bundle's commit and its previous ruche, from bundle/MANIFEST's "commit ..." and
    "previous: ..." lines (tools/scripts/gpu_bundle.sh writes them)."""
    facts = {}
    try:
        for line in pathlib.Path(path).read_text().splitlines():
            if line.startswith("commit ") and "commit" not in facts:
                facts["commit"] = line[len("commit "):].strip()
            elif line.startswith("previous: "):
                facts["previous"] = line[len("previous: "):].strip()
    except OSError:
        pass
    facts.setdefault("previous", "bin/ruche-previous (no MANIFEST line)")
    return facts


def read_lines(stream, lines):
    """A reader thread's loop: stream's lines into the queue, then None."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def read_jsonl(path):
    """A metrics.jsonl's records (a line cut by a kill is dropped)."""
    records = []
    try:
        for line in pathlib.Path(path).read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    except OSError:
        pass
    return records


def print_plan(plan):
    print("benchmarks/gpu_check.sh OUT runs, in order, each step killed at its budget:")
    for s in plan:
        print(f"  {s['name']:12s} {s['budget_s']:4d} s  {s['what']}")
    total = sum(s["budget_s"] for s in plan)
    print(f"  {'total':12s} {total:4d} s  (command 1; limit {COMMAND1_LIMIT_S} s)")
    print(f"benchmarks/gpu_check.sh OUT --rerun-failed results.json: step bundle, then the steps "
          f"not passed or skipped, in order, while their budgets fit in {RERUN_LIMIT_S} s")


def rerun_names(check, earlier_path):
    """The steps to run again: bundle (a fresh machine has nothing unpacked), then those not
    passed or skipped, while they fit in RERUN_LIMIT_S; the settled ones keep their results.
    Skips count as settled only when the earlier run saw its card (else they were "no CUDA
    device")."""
    data = json.loads(pathlib.Path(earlier_path).read_text())
    earlier = {r["name"]: r for r in data["steps"]}
    saw_card = earlier.get("bundle", {"result": "pass"})["result"] == "pass"
    settled = SETTLED if saw_card else ("pass",)
    check.facts = {"earlier_card": data.get("facts", {}).get("card", "?")}
    names, spent = [], 0
    for step in check.plan:
        old = earlier.get(step["name"])
        if old and old["result"] in settled and step["name"] != "bundle":
            check.record(step["name"]).update(old, earlier=True)
        elif spent + step["budget_s"] <= RERUN_LIMIT_S:
            names.append(step["name"])
            spent += step["budget_s"]
        else:
            check.record(step["name"])["note"] = (f"over the rerun's {RERUN_LIMIT_S} s: "
                                                  "rerun again")
    return names


def main():
    parser = argparse.ArgumentParser(prog="benchmarks/gpu_check.sh",
                                     description="ruche's GPU check (header of gpu_check.sh)")
    parser.add_argument("out", nargs="?", help="where summary.md, results.json, logs go")
    parser.add_argument("--plan", action="store_true", help="print the steps and budgets")
    parser.add_argument("--rerun-failed", metavar="FILE",
                        help="an earlier run's results.json: run what did not pass")
    parser.add_argument("--only", help="comma-separated steps (after bundle)")
    args = parser.parse_args()
    plan = PLAN
    if os.environ.get("RUCHE_GPU_CHECK_PLAN"):
        plan = json.loads(pathlib.Path(os.environ["RUCHE_GPU_CHECK_PLAN"]).read_text())
    if args.plan:
        print_plan(plan)
        return 0
    if not args.out:
        parser.error("OUT is required (or --plan)")
    command = shlex.join(["benchmarks/gpu_check.sh"] + sys.argv[1:])
    check = Check(pathlib.Path(args.out).resolve(), plan, command)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run()'s finally kills the group
    if args.rerun_failed:
        names = rerun_names(check, args.rerun_failed)
    elif args.only:
        names = ["bundle"] + args.only.split(",")
        unknown = set(names) - {s["name"] for s in plan} - {"bundle"}
        if unknown:
            parser.error(f"unknown steps {sorted(unknown)}; --plan lists them")
    else:
        names = [s["name"] for s in plan]
    if args.only:  # the report covers the named steps alone
        check.records = [r for r in check.records if r["name"] in names]
    check.save()
    check.run_steps(names)
    print(check.summary())
    return 0 if check.verdict() == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
