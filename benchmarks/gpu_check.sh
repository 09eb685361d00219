#!/usr/bin/env bash
# GPU check: runs ruche's GPU bundle on a machine with an NVIDIA GPU and reports what works.
#
# Here (the build machine):   make gpu-bundle   -> dist/ruche-gpu-bundle.tar.xz (<= ~28 MiB)
#                             make gpu-data     -> dist/fashion-mnist.tar.xz (~25 MiB; stage fashion)
# There (the GPU machine), from the repository root, with dist/ carried along:
#   bash benchmarks/gpu_check.sh OUTDIR [STAGE] [DATA]
# STAGE (each fits in 9 minutes; run them as separate commands when one command may last only 10):
#   smoke    unpack the bundle, print card/driver/cuDNN/NCCL, `ruche devices`, one training step
#            of fashion_cnn on the GPU (synthetic data); when `ruche devices` fails or misses a
#            card that nvidia-smi lists, the stage (and `all`) stops there with its log
#   ops      the gpu-labelled test binary (gpu_test) alone; the report names every case
#   train    tests/gpu/train_equivalence.py RUCHE WORKDIR: a few steps on GPU (fp32) and CPU from one npz
#            end with the same weights ("missing" while the script does not exist)
#   fashion  fashion_cnn to >= 92% test accuracy on one GPU (15 epochs, batch 128; override with
#            RUCHE_FASHION_EPOCHS, add flags with RUCHE_FASHION_FLAGS). DATA: a directory with the
#            four idx files (raw or .gz) or an archive of one; else RUCHE_FASHION_DIR, else what an
#            earlier call unpacked, else dist/fashion-mnist.tar.xz, else /usr/share/datasets/...
#   bench    benchmarks/gpu_throughput.py within the stage's time (RUCHE_BENCH_ARGS: more flags,
#            e.g. "--models resnet50 --sides ruche torch"); its results land in
#            benchmarks/results/ and are copied into OUTDIR
#   unit     PyTorch references (tests/ops/reference/generate.py with the machine's python3 + torch),
#            then every unit test (ctest's `make test` set: not gpu, slow, mpi, fault)
#   all      smoke, ops, unit (default)
# Bundle and data travel in separate calls (64 MiB each): the first call carries
# dist/ruche-gpu-bundle.tar.xz and runs smoke; a later one may carry only dist/fashion-mnist.tar.xz
# and run fashion: later stages reuse what earlier ones left in the scratch directory (the unpacked
# bundle and data, the references, the results so far) while the machine stays warm:
# RUCHE_GPU_SCRATCH, default /tmp/ruche-gpu. A different bundle archive (by checksum) starts
# afresh. RUCHE_GPU_BUNDLE names another archive; RUCHE_PYTHON another python.
#
# OUTDIR gets three flat files, each covering every stage run so far on this machine:
#   summary.md    verdict, machine facts, one line per test (case counts), failures and skips,
#                 the fashion accuracy, the benchmark's table, every gpu_test case
#   results.json  the same as data: {"verdict", "facts", "tests": [{name, group, result, cases...}]}
#   logs.tar.gz   every log (one per test, gtest JSON beside it), facts and nvidia-smi output
# (stage bench adds gpu_throughput-<card>-<date>.{json,md}).
# Exit status, of the stage run (the verdict covers every stage so far): 0 nothing failed (also
# when no GPU was found: the verdict says so, and the GPU pieces say "skipped: no CUDA device"),
# 1 a test failed, 2 the check itself could not run (no bundle, no python3, no Fashion-MNIST for
# stage fashion).
set -euo pipefail

usage="usage: benchmarks/gpu_check.sh OUTDIR [smoke|ops|train|fashion|bench|unit|all] [DATA]"
outdir=${1:?$usage}
stage=${2:-all}
data=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=${RUCHE_GPU_SCRATCH:-/tmp/ruche-gpu}
archive=${RUCHE_GPU_BUNDLE:-$root/dist/ruche-gpu-bundle.tar.xz}
started=$(date +%s)

die() { echo "gpu_check: error: $*" >&2; exit 2; }
case "$stage" in
  smoke|ops|train|fashion|bench|unit|all) ;;
  *) die "unknown stage '$stage' (smoke, ops, train, fashion, bench, unit, all)" ;;
esac
[ -z "$data" ] || data=$(realpath -m "$data")
command -v python3 >/dev/null || die "python3 not found"
mkdir -p "$scratch" "$outdir"
outdir=$(cd "$outdir" && pwd)

# ---- the bundle: unpacked once per archive ----
if [ -f "$archive" ]; then
  sum=$(sha256sum "$archive" | cut -d' ' -f1)
  if [ "$(cat "$scratch/archive.sha256" 2>/dev/null)" != "$sum" ]; then
    echo "gpu_check: unpacking $archive ($(du -h "$archive" | cut -f1)) into $scratch"
    rm -rf "$scratch/bundle" "$scratch/results" "$scratch/logs" "$scratch/work" "$scratch/reference"
    tar -xJf "$archive" -C "$scratch"
    echo "$sum" >"$scratch/archive.sha256"
  else
    echo "gpu_check: reusing the bundle unpacked in $scratch"
  fi
elif [ -x "$scratch/bundle/bin/ruche" ]; then
  echo "gpu_check: no $archive; reusing the bundle unpacked in $scratch"
else
  die "no bundle: $archive is missing (make gpu-bundle on the build machine, carry dist/)"
fi
bundle="$scratch/bundle"
mkdir -p "$scratch/logs"

# ---- machine facts (python without the bundle's library path: torch must load its own) ----
{
  echo "== nvidia-smi"; nvidia-smi 2>&1 || echo "(nvidia-smi failed or is missing)"
  echo "== nvidia-smi -q (excerpt)"; nvidia-smi -q 2>&1 | head -60 || true
} >"$scratch/logs/nvidia-smi.log" 2>&1 || true
devices_out=$(bash -c ". '$bundle/env.sh' && ruche devices" 2>&1) || true
cuda_libs=$(bash -c ". '$bundle/env.sh' && ldd '$bundle/bin/ruche'" 2>&1 \
              | awk '/cudnn|cublas|nccl/ {print $1 " -> " $3}') || true
DEVICES_OUT="$devices_out" CUDA_LIBS="$cuda_libs" BUNDLE="$bundle" \
  timeout 180 "${RUCHE_PYTHON:-python3}" - >"$scratch/facts.json" 2>"$scratch/logs/facts.stderr" <<'EOF' || true
import json, os, platform, subprocess

facts = {}
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception as e:
        return f"({e})"
q = sh("nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader")
facts["gpu"] = q.splitlines() if q else []
facts["driver"] = sh("nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1")
header = sh("nvidia-smi | grep -o 'CUDA Version: [0-9.]*'")
facts["cuda_driver_api"] = header.replace("CUDA Version: ", "")
try:
    import torch
    facts["torch"] = torch.__version__
    facts["torch_cuda"] = f"{torch.version.cuda}, available={torch.cuda.is_available()}"
    facts["cudnn_torch"] = str(torch.backends.cudnn.version())
    try:
        facts["nccl_torch"] = ".".join(map(str, torch.cuda.nccl.version()))
    except Exception as e:
        facts["nccl_torch"] = f"({e})"
except Exception as e:
    facts["torch"] = f"not importable ({e})"
try:
    from importlib import metadata
    facts["nvidia_packages"] = sorted(
        f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
        if (d.metadata["Name"] or "").lower().startswith("nvidia-"))
except Exception as e:
    facts["nvidia_packages"] = [f"({e})"]
out = os.environ.get("DEVICES_OUT", "")
facts["cuda_devices"] = [l for l in out.splitlines() if l.startswith("cuda:")]
facts["ruche_versions"] = next((l for l in out.splitlines() if l.startswith("CUDA runtime")), out[-300:])
facts["cuda_libraries_used"] = [l for l in os.environ.get("CUDA_LIBS", "").splitlines() if l]
try:
    rel = dict(l.split("=", 1) for l in open("/etc/os-release").read().splitlines() if "=" in l)
    facts["os"] = rel.get("PRETTY_NAME", "").strip('"')
except OSError:
    facts["os"] = platform.platform()
facts["glibc"] = " ".join(platform.libc_ver())
facts["cpus"] = os.cpu_count()
try:
    facts["bundle"] = " / ".join(open(os.path.join(os.environ["BUNDLE"], "MANIFEST")).read().splitlines()[:2])
except OSError:
    facts["bundle"] = "?"
print(json.dumps(facts, indent=1))
EOF
[ -s "$scratch/facts.json" ] || echo '{"error": "facts probe failed; see logs/facts.stderr"}' >"$scratch/facts.json"
cp "$scratch/facts.json" "$scratch/logs/facts.json"

echo "gpu_check: stage $stage"
echo "---- card and driver"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  || echo "nvidia-smi: not available"
python3 -c "import json, sys; f = json.load(open(sys.argv[1]))
for k in ('cuda_driver_api', 'torch', 'cudnn_torch', 'nccl_torch', 'nvidia_packages', 'cuda_libraries_used', 'os', 'glibc'):
    print(f'{k}: {f.get(k)}')" "$scratch/facts.json" || true
echo "---- ruche devices"
echo "$devices_out"

RUCHE_GPU_CHECK_SPENT=$(( $(date +%s) - started )) \
  python3 "$root/benchmarks/gpu_check.py" "$stage" "$scratch" "$outdir" ${data:+"$data"}
