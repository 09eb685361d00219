"""conv_transpose2d references: inputs, output and gradients from
torch.nn.functional.conv_transpose2d (float32), weights [C_in, C_out/groups, KH, KW]."""
import numpy as np
import torch
import torch.nn.functional as F

# name: (N, C, H, W, O, (KH, KW), stride, padding, output_padding, dilation, groups, bias)
CASES = {
    "deconv_basic": (2, 3, 5, 5, 4, (3, 3), (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    "deconv_stride2": (2, 4, 4, 5, 3, (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1, True),
    "deconv_stride2_outpad": (1, 3, 5, 4, 5, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1, True),
    "deconv_outpad_no_pad": (2, 2, 4, 3, 3, (3, 3), (3, 2), (0, 0), (2, 1), (1, 1), 1, False),
    "deconv_dilation": (2, 3, 6, 5, 4, (3, 3), (1, 1), (2, 1), (0, 0), (2, 2), 1, True),
    "deconv_groups2": (2, 4, 5, 6, 6, (3, 3), (2, 1), (1, 0), (1, 0), (1, 1), 2, True),
    "deconv_depthwise": (2, 6, 5, 5, 6, (2, 2), (2, 2), (0, 0), (0, 0), (1, 1), 6, True),
    "deconv_rect": (2, 5, 4, 6, 7, (5, 3), (3, 2), (2, 1), (2, 1), (1, 2), 1, True),
    "deconv_outpad_dilation": (1, 2, 4, 4, 3, (3, 3), (1, 1), (2, 2), (2, 1), (3, 2), 1, True),
    "deconv_1x1": (3, 8, 4, 4, 5, (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), 1, False),
    "deconv_wide": (2, 32, 8, 8, 16, (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1, True),
}


def cases():
    g = torch.Generator().manual_seed(2)
    for name, (n, c, h, w, o, k, stride, pad, opad, dil, groups, bias) in CASES.items():
        x = torch.randn(n, c, h, w, generator=g).requires_grad_()
        wt = (torch.randn(c, o // groups, *k, generator=g) * 0.3).requires_grad_()
        b = torch.randn(o, generator=g).requires_grad_() if bias else None
        y = F.conv_transpose2d(x, wt, b, stride=stride, padding=pad, output_padding=opad,
                               groups=groups, dilation=dil)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        params = np.array([*stride, *pad, *dil, groups, int(bias), *opad], dtype=np.int32)
        arrays = {"x": x, "w": wt, "y": y, "dy": dy, "dx": x.grad, "dw": wt.grad,
                  "params": params}
        if bias:
            arrays.update(b=b, db=b.grad)
        yield name, arrays
