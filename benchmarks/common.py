"""What every ruche benchmark shares (docs/ARCHITECTURE.md, Benchmarks): the machine, PyTorch at its
best, alternating rounds, medians and ratios, and results written to benchmarks/results/."""
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def machine() -> dict:
    info = {"host": platform.node(), "cores": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        info["gpu"] = gpu.stdout.strip() or "none"
    except OSError:
        info["gpu"] = "none"
    return info


def require_openblas(torch) -> str:
    """Refuses to run when torch's BLAS is not OpenBLAS: a reference-BLAS torch is no anchor."""
    torch.ones(64, 64) @ torch.ones(64, 64)  # make sure the BLAS library is loaded
    with open("/proc/self/maps") as f:
        maps = f.read()
    if "libopenblas" not in maps:
        raise SystemExit("benchmark: torch is not using OpenBLAS (install libopenblas0-pthread: "
                         "make deps); refusing to compare against a slow baseline")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            raise SystemExit(f"benchmark: {var} is set; run through benchmarks/run_all.sh, which "
                             "unsets it for the benchmark only")
    return "openblas"


def summary(samples: list) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": samples}


_CLAIMED = set()  # results this process writes (a benchmark rewrites its own as rows come in)


def results_base(name: str, directory=None, suffix: str = "") -> pathlib.Path:
    """DIRECTORY/NAME-YYYY-MM-DD{SUFFIX} (default benchmarks/results), claimed for this process:
    a result already there from an earlier run is never overwritten (call this before the first
    round, so a taken name stops the run at once rather than after it)."""
    directory = pathlib.Path(directory) if directory else RESULTS
    base = directory / f"{name}-{datetime.date.today().isoformat()}{suffix}"
    if base not in _CLAIMED and (base.with_suffix(".json").exists() or
                                 base.with_suffix(".md").exists()):
        raise SystemExit(f"benchmark: {base}.json exists from an earlier run: pass --suffix "
                         "(e.g. b) for another result of the day")
    _CLAIMED.add(base)
    return base


def write_results(name: str, record: dict, table: str, directory=None,
                  suffix: str = "") -> pathlib.Path:
    """Writes DIRECTORY/NAME-YYYY-MM-DD{SUFFIX}.{json,md} (default benchmarks/results; a suffix
    such as "b" for a second result of the day), never over an earlier run's; returns the base."""
    base = results_base(name, directory, suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    base.with_suffix(".md").write_text(table)
    return base


def steady_img_per_s(metrics_path, global_batch: int, skip_intervals: int = 1) -> float:
    """Steady-state global img/s of a `ruche train` run from its metrics.jsonl: the train log
    intervals after the first `skip_intervals` (warm-up), images over seconds."""
    train = []
    with open(metrics_path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("split") == "train" and "img_per_s" in r:
                train.append(r)
    intervals = []
    for prev, r in zip(train, train[1:]):
        intervals.append((r["step"] - prev["step"], r["img_per_s"]))
    intervals = intervals[max(0, skip_intervals - 1):]
    if not intervals:
        raise SystemExit(f"benchmark: {metrics_path} has no steady-state interval: {train}")
    images = sum(n * global_batch for n, _ in intervals)
    return images / sum(n * global_batch / rate for n, rate in intervals)


def ruche_versions(build) -> dict:
    """ruche --version, the git revision and whether the engine/comm sources differ from it."""
    here = pathlib.Path(__file__).resolve().parent
    version = subprocess.run([f"{build}/ruche", "--version"], capture_output=True,
                             text=True).stdout.strip() or "?"
    rev = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(here.parent), "status", "--short", "--", "engine",
                            "comm", "tools", "CMakeLists.txt"],
                           capture_output=True, text=True).stdout.split("\n")
    return {"ruche": version, "ruche_git": rev,
            "uncommitted_sources": [d.strip() for d in dirty if d.strip()],
            "python": platform.python_version()}



def _busy_jiffies() -> int:
    """Busy jiffies of the whole machine so far (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4]


def run_with_cpu_share(args, env) -> dict:
    """Runs args (e.g. an mpirun job) to completion; returns its output, wall time, the cores it
    used on average (its getrusage, descendants included) and the cores the rest of the machine
    used meanwhile (/proc/stat minus the job's): on a shared machine, what the job could get.
    Call it with no other child process of this interpreter running."""
    import resource
    import time as _time
    hz = os.sysconf("SC_CLK_TCK")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, t0 = _busy_jiffies(), _time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = _time.perf_counter() - t0
    busy1 = _busy_jiffies()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    machine = (busy1 - busy0) / hz
    return {"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
            "wall_s": wall, "job_cores": own / wall,
            "other_cores": max(0.0, machine - own) / wall}


def ruche_train_command(build, ranks: int, model: str, spec: dict, flags: list) -> list:
    """`mpirun -np RANKS ruche train --model MODEL` on spec's data (spec["data"] == "synthetic"
    uses spec["shape"]; else the default Fashion-MNIST), then `flags`."""
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [f"{build}/ruche", "train", "--model", model]
    if spec["data"] == "synthetic":
        cmd += ["--data", "synthetic", "--synthetic-shape", ",".join(map(str, spec["shape"]))]
    return cmd + [str(f) for f in flags]


def ruche_env(threads: int) -> dict:
    """The environment ruche benchmarks run in: OMP_NUM_THREADS set, OpenBLAS overrides unset."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def footer_lines(notes: list, command: str, env: str, elapsed_s: float) -> list:
    """The end of every results page: the notes, then the command that made it and its time."""
    env_text = f" ({env})" if env else ""
    return (["", "Notes:", ""] + [f"- {n}" for n in notes] +
            ["", f"Command: `{command}`{env_text}; {elapsed_s:.0f} s.", ""])


def median_range(s: dict, scale: float = 1.0, digits: int = 1) -> str:
    """A summary() as "median (min-max)", times scale, with `digits` decimals."""
    return (f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}-"
            f"{s['max'] * scale:.{digits}f})")


def load_note(before) -> str:
    """The machine's 1-minute load average at the start (`before`, os.getloadavg()) and now."""
    after = os.getloadavg()
    return (f"load average before {before[0]:.2f}, after {after[0]:.2f} (1 min) on "
            f"{os.cpu_count()} cores")
