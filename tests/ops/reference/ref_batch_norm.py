"""batch norm references from torch.nn.functional.batch_norm (float32): a training forward (output,
batch statistics, updated running statistics), its gradients, and an inference forward."""
import numpy as np
import torch
import torch.nn.functional as F

# name: (shape, eps, momentum, affine)
CASES = {
    "bn_2d": ((8, 5), 1e-5, 0.1, True),
    "bn_4d": ((4, 3, 5, 7), 1e-5, 0.1, True),
    "bn_4d_batch1": ((1, 6, 3, 3), 1e-3, 0.3, True),
    "bn_4d_wide": ((8, 32, 6, 6), 1e-5, 0.1, True),
    "bn_no_affine": ((3, 4, 5, 5), 1e-5, 0.1, False),
}


def cases():
    g = torch.Generator().manual_seed(3)
    for name, (shape, eps, momentum, affine) in CASES.items():
        c = shape[1]
        # Off-centre, scaled data: the statistics matter.
        x = (torch.randn(shape, generator=g) * 2.5 + 1.5).requires_grad_()
        gamma = (torch.rand(c, generator=g) + 0.5).requires_grad_() if affine else None
        beta = torch.randn(c, generator=g).requires_grad_() if affine else None
        running_mean = torch.randn(c, generator=g)
        running_var = torch.rand(c, generator=g) + 0.5
        arrays = {"x": x.detach().clone(), "running_mean_in": running_mean.clone(),
                  "running_var_in": running_var.clone(),
                  "params": np.array([eps, momentum, float(affine)], dtype=np.float32)}
        y = F.batch_norm(x, running_mean, running_var, gamma, beta, training=True,
                         momentum=momentum, eps=eps)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        dims = [0] + list(range(2, len(shape)))
        arrays.update(y=y, dy=dy, dx=x.grad, running_mean=running_mean, running_var=running_var,
                      save_mean=x.detach().mean(dims),
                      save_var=x.detach().var(dims, unbiased=False))
        if affine:
            arrays.update(gamma=gamma, beta=beta, dgamma=gamma.grad, dbeta=beta.grad)
        with torch.no_grad():
            arrays["y_inference"] = F.batch_norm(x, running_mean, running_var, gamma, beta,
                                                 training=False, eps=eps)
        yield name, arrays
