"""linear references: inputs, output and gradients from torch.nn.functional.linear (float32)."""
import numpy as np
import torch
import torch.nn.functional as F

# name: (N, in, out, bias)
CASES = {
    "linear_batch1": (1, 7, 3, True),
    "linear_odd": (5, 33, 17, True),
    "linear_no_bias": (6, 10, 4, False),
    "linear_wide": (64, 256, 100, True),
}


def cases():
    g = torch.Generator().manual_seed(2)
    for name, (n, fin, fout, bias) in CASES.items():
        x = torch.randn(n, fin, generator=g).requires_grad_()
        w = (torch.randn(fout, fin, generator=g) / fin**0.5).requires_grad_()
        b = torch.randn(fout, generator=g).requires_grad_() if bias else None
        y = F.linear(x, w, b)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        arrays = {"x": x, "w": w, "y": y, "dy": dy, "dx": x.grad, "dw": w.grad,
                  "params": np.array([int(bias)], dtype=np.int32)}
        if bias:
            arrays.update(b=b, db=b.grad)
        yield name, arrays
