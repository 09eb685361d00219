"""What every ruche benchmark shares (../shared/BENCHMARKING.md): the machine, PyTorch at its
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


def write_results(name: str, record: dict, table: str) -> pathlib.Path:
    RESULTS.mkdir(exist_ok=True)
    day = datetime.date.today().isoformat()
    base = RESULTS / f"{name}-{day}"
    base.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    base.with_suffix(".md").write_text(table)
    return base
