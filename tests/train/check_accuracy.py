#!/usr/bin/env python3
"""Trains with `ruche train` defaults (fashion_cnn on Fashion-MNIST) and checks the test
accuracy in RUN/eval-test.json against a floor.

usage: check_accuracy.py RUCHE_BINARY RUN_DIR MIN_ACCURACY [extra ruche train flags...]
With --device cuda among the flags and no CUDA device, exits 77 (ctest's skip).
"""
import json
import shutil
import subprocess
import sys
import time


def main() -> int:
    ruche, run, floor = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if "cuda" in " ".join(sys.argv[4:]):
        devices = subprocess.run([ruche, "devices"], capture_output=True, text=True).stdout
        if "no CUDA device" in devices:
            print(f"skipped: {devices.strip()}")
            return 77
    start = time.time()
    shutil.rmtree(run, ignore_errors=True)  # a fresh run, not a resume of the last one
    subprocess.run([ruche, "train", "--out", run, *sys.argv[4:]], check=True)
    with open(f"{run}/eval-test.json") as f:
        accuracy = json.load(f)["accuracy"]
    print(f"test accuracy {accuracy:.4f} after {time.time() - start:.0f} s (floor {floor})")
    return 0 if accuracy >= floor else 1


if __name__ == "__main__":
    sys.exit(main())
