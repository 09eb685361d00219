#!/usr/bin/env python3
"""Writes the numpy-made .npz fixtures npz_test.cc reads (run here; the outputs are committed)."""
import numpy as np

arrays = {
    "layer1.0.conv1.weight": (np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 10) / 4,
    "layer1.0.bn1.num_batches_tracked": np.array(7, dtype=np.int64),
    "labels": np.array([3, -1, 0, 2147483647], dtype=np.int32),
    "pixels": np.array([[0, 128, 255]], dtype=np.uint8),
}
np.savez("numpy_stored.npz", **arrays)
# A long repetitive array so deflate really shrinks it.
np.savez_compressed("numpy_compressed.npz", big=np.tile(np.float32([1.5, -2.0]), 200), **arrays)
