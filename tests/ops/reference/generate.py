#!/usr/bin/env python3
"""Writes PyTorch reference inputs and outputs for the C++ op tests.

Every ref_*.py beside this file defines cases() yielding (case_name, {name: numpy array});
each array lands in OUTDIR/case_name/name.npy. Float arrays are stored as float32.
"""
import importlib.util
import pathlib
import sys

import numpy as np
import torch


def main() -> int:
    out = pathlib.Path(sys.argv[1])
    torch.manual_seed(0)
    torch.set_num_threads(1)
    here = pathlib.Path(__file__).parent
    count = 0
    for module_path in sorted(here.glob("ref_*.py")):
        spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for case, arrays in module.cases():
            case_dir = out / case
            case_dir.mkdir(parents=True, exist_ok=True)
            for name, value in arrays.items():
                if isinstance(value, torch.Tensor):
                    value = value.detach().cpu().numpy()
                value = np.ascontiguousarray(value)
                if value.dtype == np.float64:
                    value = value.astype(np.float32)
                np.save(case_dir / f"{name}.npy", value)
            count += 1
    print(f"wrote {count} reference cases to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
