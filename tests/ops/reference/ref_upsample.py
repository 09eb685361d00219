"""upsample references: torch.nn.functional.interpolate, nearest and bilinear (both
align_corners), by scale factor (the scale reaches the kernel, as nn.Upsample passes it) or size."""
import numpy as np
import torch
import torch.nn.functional as F

# name: (N, C, H, W, mode, align_corners, scale (h, w) or None, size (h, w) or None)
CASES = {
    "upsample_nearest_x2": (2, 3, 4, 5, "nearest", False, (2.0, 2.0), None),
    "upsample_nearest_x3_x2": (1, 2, 3, 4, "nearest", False, (3.0, 2.0), None),
    "upsample_nearest_frac": (2, 2, 5, 7, "nearest", False, (1.5, 2.5), None),
    "upsample_nearest_size": (2, 3, 5, 4, "nearest", False, None, (7, 11)),
    "upsample_nearest_down": (1, 2, 9, 8, "nearest", False, None, (4, 3)),
    "upsample_bilinear_x2": (2, 3, 4, 5, "bilinear", False, (2.0, 2.0), None),
    "upsample_bilinear_x2_ac": (2, 3, 4, 5, "bilinear", True, (2.0, 2.0), None),
    "upsample_bilinear_frac": (1, 2, 5, 6, "bilinear", False, (1.5, 2.25), None),
    "upsample_bilinear_frac_ac": (1, 2, 5, 6, "bilinear", True, (1.5, 2.25), None),
    "upsample_bilinear_size": (2, 2, 4, 6, "bilinear", False, None, (9, 7)),
    "upsample_bilinear_size_ac": (2, 2, 4, 6, "bilinear", True, None, (9, 7)),
    "upsample_bilinear_down": (1, 3, 9, 10, "bilinear", False, None, (4, 3)),
    "upsample_bilinear_one": (1, 2, 1, 3, "bilinear", True, None, (4, 1)),
}


def cases():
    g = torch.Generator().manual_seed(3)
    for name, (n, c, h, w, mode, ac, scale, size) in CASES.items():
        x = torch.randn(n, c, h, w, generator=g).requires_grad_()
        kwargs = {"mode": mode}
        if mode == "bilinear":
            kwargs["align_corners"] = ac
        if scale is not None:
            y = F.interpolate(x, scale_factor=scale, **kwargs)
        else:
            y = F.interpolate(x, size=size, **kwargs)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        # mode (0 nearest, 1 bilinear), align_corners; scales (0: from the sizes)
        params = np.array([int(mode == "bilinear"), int(ac)], dtype=np.int32)
        scales = np.array(scale if scale is not None else (0.0, 0.0), dtype=np.float32)
        yield name, {"x": x, "y": y, "dy": dy, "dx": x.grad, "params": params, "scales": scales}
