"""PyTorch references for max_pool2d, avg_pool2d and global average pooling (pooling_test.cc).

Each case stores its parameters as `params` (i32: kh, kw, sh, sw, ph, pw, ceil_mode,
count_include_pad), the input x, the output y (and max-pool indices as i32), a fixed output
gradient dy and the input gradient dx from autograd.
"""
import numpy as np
import torch
import torch.nn.functional as F

# name: (shape, kernel, stride, padding, ceil_mode, count_include_pad)
MAX_CASES = {
    "k2s2": ((2, 3, 8, 6), (2, 2), (2, 2), (0, 0), False, True),
    "k3s2p1_odd": ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), False, True),
    "k3s2p1_ceil": ((2, 2, 8, 10), (3, 3), (2, 2), (1, 1), True, True),
    "k2s2_ceil_odd": ((1, 3, 7, 5), (2, 2), (2, 2), (0, 0), True, True),
    "k3x2_s2x1_p1x0": ((2, 2, 9, 6), (3, 2), (2, 1), (1, 0), False, True),
    # ceil_mode would add a window starting in the right padding; PyTorch drops it (5 -> 3 rows).
    "k2s2p1_ceil_drop": ((1, 2, 5, 6), (2, 2), (2, 2), (1, 1), True, True),
}
AVG_CASES = {
    "k3s2p1_incl": ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), False, True),
    "k3s2p1_excl": ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), False, False),
    "k3s2p1_ceil_incl": ((2, 2, 8, 10), (3, 3), (2, 2), (1, 1), True, True),
    "k3s2p1_ceil_excl": ((2, 2, 8, 10), (3, 3), (2, 2), (1, 1), True, False),
    "k2s2_ceil_odd": ((1, 3, 7, 5), (2, 2), (2, 2), (0, 0), True, True),
    "k3x2_s2x1_p1x0_excl": ((2, 2, 9, 6), (3, 2), (2, 1), (1, 0), False, False),
    "k2s2p1_ceil_drop_incl": ((1, 2, 5, 6), (2, 2), (2, 2), (1, 1), True, True),
}


def params(kernel, stride, padding, ceil_mode, include_pad):
    return np.array([*kernel, *stride, *padding, int(ceil_mode), int(include_pad)], np.int32)


def cases():
    g = torch.Generator().manual_seed(10)
    for name, (shape, k, s, p, ceil, incl) in MAX_CASES.items():
        x = torch.randn(shape, generator=g, requires_grad=True)
        y, idx = F.max_pool2d(x, k, s, p, ceil_mode=ceil, return_indices=True)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        yield f"pool_max_{name}", {"params": params(k, s, p, ceil, incl), "x": x, "y": y,
                                   "indices": idx.to(torch.int32), "dy": dy, "dx": x.grad}
    for name, (shape, k, s, p, ceil, incl) in AVG_CASES.items():
        x = torch.randn(shape, generator=g, requires_grad=True)
        y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=incl)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        yield f"pool_avg_{name}", {"params": params(k, s, p, ceil, incl), "x": x, "y": y,
                                   "dy": dy, "dx": x.grad}
    x = torch.randn((3, 4, 7, 5), generator=g, requires_grad=True)
    y = F.adaptive_avg_pool2d(x, 1)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    yield "pool_global_avg", {"x": x, "y": y, "dy": dy, "dx": x.grad}
