#!/usr/bin/env python3
"""The test runner and report writer behind benchmarks/gpu_check.sh (see its header for usage).

python3 gpu_check.py STAGE SCRATCH OUTDIR
  SCRATCH holds the unpacked bundle (SCRATCH/bundle), results of earlier stages
  (SCRATCH/results/*.json), their logs (SCRATCH/logs/) and the PyTorch references.
Runs the tests of STAGE from bundle/tests.json the way ctest would (environment, timeout,
working directory), each gtest executable with --gtest_output=json so the report can name every
case, then writes OUTDIR/summary.md, OUTDIR/results.json and OUTDIR/logs.tar.gz covering every
stage run so far on this machine. Python's standard library only; never imports torch itself
(the reference generator and the facts probe run in their own interpreter).
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time

STAGE_BUDGET_S = 8.5 * 60  # a stage must fit in 9 minutes, with margin for the report
STAGES = {
    "smoke": ["devices", "gpu"],
    "unit": ["unit"],
}
STAGES["all"] = STAGES["smoke"] + STAGES["unit"]


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
    """Per-case results from a --gtest_output=json file: {name: passed|failed|skipped}."""
    try:
        data = json.loads(pathlib.Path(json_path).read_text())
    except (OSError, ValueError):
        return None
    cases = {}
    for suite in data.get("testsuites", []):
        for case in suite.get("testsuite", []):
            name = f"{suite.get('name')}.{case.get('name')}"
            if case.get("failures"):
                cases[name] = "failed"
            elif case.get("result") == "SKIPPED" or case.get("status") == "NOTRUN":
                cases[name] = "skipped"
            else:
                cases[name] = "passed"
    return cases


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
    def __init__(self, scratch, deadline):
        self.scratch = scratch
        self.bundle = scratch / "bundle"
        self.deadline = deadline
        self.tests = json.loads((self.bundle / "tests.json").read_text())["tests"]
        self.paths = json.loads((self.bundle / "paths.json").read_text())
        self.env = bundle_env(self.bundle)
        self.reference_dir = scratch / "reference"

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

    def generate_references(self):
        """PyTorch's reference numbers, once per machine (later stages reuse them)."""
        done = self.reference_dir / ".complete"
        log = log_path(self.scratch, "unit/torch_reference_fixtures.log")
        if done.exists():
            return {"name": "torch_reference_fixtures", "result": "passed", "seconds": 0,
                    "note": "reused from an earlier stage", "log": "unit/torch_reference_fixtures.log"}
        python = os.environ.get("RUCHE_PYTHON") or shutil.which("python3") or "python3"
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
        if not cmd:
            record.update(result="not_run", note="no command (not built?)")
            return record
        if self.remaining() < 5:
            record.update(result="not_run", note="stage time budget spent")
            return record
        is_gtest = cmd[0].startswith(str(self.bundle / "bin"))
        gtest_json = self.scratch / "logs" / group / f"{name}.gtest.json"
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
            counts = {k: sum(1 for v in cases.values() if v == k)
                      for k in ("passed", "failed", "skipped")}
            record["cases"] = counts
            record["failed_cases"] = sorted(k for k, v in cases.items() if v == "failed")
            if counts["skipped"]:
                record["skip_reasons"] = skip_reasons(log)
            if code == 0 and counts["skipped"] and not counts["passed"]:
                record["result"] = "skipped"
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

    def devices(self):
        log = log_path(self.scratch, "smoke/ruche_devices.log")
        code, seconds = run_logged([str(self.bundle / "bin" / "ruche"), "devices"], log, self.env,
                                   str(self.scratch), 60)
        text = log.read_text(errors="replace")
        return {"name": "ruche devices", "result": "passed" if code == 0 else "failed",
                "exit": code, "seconds": seconds, "log": "smoke/ruche_devices.log",
                "output": [l for l in text.splitlines()[1:] if l.strip()][:8]}


def run_stage(stage, scratch):
    deadline = time.monotonic() + STAGE_BUDGET_S - float(os.environ.get("RUCHE_GPU_CHECK_SPENT", "0"))
    runner = Runner(scratch, deadline)
    results = []
    for part in STAGES[stage]:
        if part == "devices":
            results.append(dict(runner.devices(), group="smoke"))
        elif part == "gpu":
            for test in runner.select("gpu"):
                results.append(dict(runner.run_test(test, "smoke"), group="smoke"))
        elif part == "unit":
            results.append(dict(runner.generate_references(), group="unit"))
            for test in runner.select("unit"):
                results.append(dict(runner.run_test(test, "unit"), group="unit"))
        # Each group's results are saved as they finish, so a later stage or a killed run keeps them.
        save_group_results(scratch, results)
    return results


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
    not_run = [r for r in results if r.get("result") == "not_run"]
    no_gpu = not facts.get("cuda_devices")
    if failed:
        return "FAIL", failed, not_run
    if not_run:
        return "INCOMPLETE", failed, not_run
    if no_gpu:
        return "NO CUDA DEVICE (gpu tests skipped; nothing ran on a GPU)", failed, not_run
    return "PASS", failed, not_run


def write_report(scratch, outdir, stage, facts):
    results = []
    for group in ("smoke", "unit"):
        path = scratch / "results" / f"{group}.json"
        if path.exists():
            results.extend(json.loads(path.read_text()))
    word, failed, not_run = verdict(results, facts)
    outdir.mkdir(parents=True, exist_ok=True)
    report = {"verdict": word, "stage": stage, "facts": facts, "tests": results}
    (outdir / "results.json").write_text(json.dumps(report, indent=1))

    lines = [f"# ruche GPU check: {word}", "",
             f"Stage run: `{stage}`; the report covers every stage run on this machine so far "
             f"({', '.join(sorted({r['group'] for r in results})) or 'none'}).", "", "## Machine", ""]
    for key in ("gpu", "driver", "cuda_driver_api", "torch", "torch_cuda", "cudnn_torch",
                "nccl_torch", "nvidia_packages", "cuda_libraries_used", "ruche_versions", "os",
                "glibc", "cpus", "bundle"):
        if facts.get(key) not in (None, "", []):
            value = facts[key]
            if isinstance(value, list):
                value = ", ".join(map(str, value))
            lines.append(f"- {key}: {value}")
    lines += ["", "## Tests", "", "| group | test | result | cases (pass/fail/skip) | seconds |",
              "|---|---|---|---|---|"]
    for r in results:
        c = r.get("cases")
        cases = f"{c['passed']}/{c['failed']}/{c['skipped']}" if c else ""
        lines.append(f"| {r['group']} | {r['name']} | {r.get('result')} | {cases} | "
                     f"{r.get('seconds', '')} |")
    for r in results:
        if r.get("failed_cases"):
            lines += ["", f"Failed in {r['name']}: " + ", ".join(r["failed_cases"][:30])]
        if r.get("result") == "failed" and not r.get("failed_cases"):
            lines += ["", f"{r['name']} failed (exit {r.get('exit')}); see logs/{r.get('log')}"]
        if r.get("skip_reasons"):
            lines += ["", f"Skips in {r['name']}: " + "; ".join(r["skip_reasons"])]
        if r.get("name") == "ruche devices":
            lines += ["", "`ruche devices`:", "```", *r.get("output", []), "```"]
    if not_run:
        lines += ["", "Not run (stage time budget): " + ", ".join(r["name"] for r in not_run)]
    lines += ["", "Logs: logs.tar.gz (one file per test, gtest JSON beside each)."]
    (outdir / "summary.md").write_text("\n".join(lines) + "\n")

    with tarfile.open(outdir / "logs.tar.gz", "w:gz") as tar:
        tar.add(scratch / "logs", arcname="logs")
    return word, failed


def main():
    stage, scratch, outdir = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    facts = json.loads((scratch / "facts.json").read_text())
    if stage not in STAGES:
        print(f"gpu_check: unknown stage '{stage}' (smoke, unit, all)", file=sys.stderr)
        return 2
    run_stage(stage, scratch)
    word, failed = write_report(scratch, outdir, stage, facts)
    print(f"gpu_check: {word}; report in {outdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
