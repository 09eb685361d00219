"""conv2d references: inputs, output and gradients from torch.nn.functional.conv2d (float32)."""
import numpy as np
import torch
import torch.nn.functional as F

# name: (N, C, H, W, O, (KH, KW), stride, padding, dilation, groups, bias)
CASES = {
    "conv_basic": (2, 3, 7, 7, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    "conv_stride2_pad": (1, 4, 9, 8, 6, (3, 3), (2, 2), (1, 1), (1, 1), 1, True),
    "conv_dilation": (2, 3, 10, 11, 5, (3, 3), (1, 1), (2, 2), (2, 2), 1, False),
    "conv_groups2": (2, 4, 6, 7, 6, (3, 3), (2, 1), (0, 1), (1, 1), 2, True),
    "conv_depthwise": (3, 8, 8, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 8, True),
    "conv_1x1": (2, 16, 5, 5, 32, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    "conv_rect": (2, 5, 11, 9, 7, (5, 3), (1, 2), (2, 0), (1, 2), 1, True),
    "conv_wide": (4, 32, 14, 14, 64, (3, 3), (1, 1), (1, 1), (1, 1), 1, False),
    "conv_wide_depthwise": (2, 32, 15, 15, 32, (3, 3), (2, 2), (1, 1), (1, 1), 32, True),
}


def cases():
    g = torch.Generator().manual_seed(1)
    for name, (n, c, h, w, o, k, stride, pad, dil, groups, bias) in CASES.items():
        x = torch.randn(n, c, h, w, generator=g).requires_grad_()
        wt = (torch.randn(o, c // groups, *k, generator=g) * 0.3).requires_grad_()
        b = torch.randn(o, generator=g).requires_grad_() if bias else None
        y = F.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=groups)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        params = np.array([*stride, *pad, *dil, groups, int(bias)], dtype=np.int32)
        arrays = {"x": x, "w": wt, "y": y, "dy": dy, "dx": x.grad, "dw": wt.grad,
                  "params": params}
        if bias:
            arrays.update(b=b, db=b.grad)
        yield name, arrays
