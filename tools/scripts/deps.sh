#!/usr/bin/env bash
# Installs every Debian package ruche needs, only when missing, then the
# project-local virtualenv for Python oracles Debian lacks. Idempotent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libopenmpi-dev openmpi-bin
  libprotobuf-dev protobuf-compiler libonnx-dev
  libdnnl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev libjpeg62-turbo-dev libpng-dev libcli11-dev
  dataset-fashion-mnist
  python3 python3-venv python3-pip
  python3-torch python3-torchvision python3-numpy python3-matplotlib python3-onnx
  libopenblas0-pthread
  patchelf zstd
  clang-format clang-tidy cppcheck  # make format-check, make lint (Debian 12: clang 14)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "deps: all Debian packages present"
fi

# Python oracles Debian does not ship (onnxruntime, tensorboard, webdataset): a local venv
# on top of Debian's python so torch/numpy stay the system ones.
venv=".venv"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if ! "$venv/bin/python" -c "import onnxruntime, tensorboard, webdataset" 2>/dev/null; then
  # Optional oracles: a test that needs one skips when it is absent, so a
  # failing index is a warning, not a failed set-up. webdataset: its
  # ShardWriter writes a shard tests/dp/webdataset.py trains from.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check onnxruntime tensorboard \
    webdataset \
    || echo "deps: warning: could not install onnxruntime/tensorboard/webdataset; tests needing" \
            "them will skip"
fi
