"""PyTorch references for the L1 and L2 weight penalties (penalty_test.cc): loss and gradient
by autograd of coeff * |w|.sum() and coeff / 2 * (w ** 2).sum()."""
import torch

COEFF = 0.03


def cases():
    g = torch.Generator().manual_seed(14)
    w = torch.randn((17, 5), generator=g)
    w[0, :3] = 0.0  # sign(0) = 0 in the L1 gradient
    for name, f in (("l1", lambda t: COEFF * t.abs().sum()),
                    ("l2", lambda t: COEFF / 2 * (t ** 2).sum())):
        x = w.clone().requires_grad_()
        loss = f(x)
        loss.backward()
        yield f"penalty_{name}", {"w": w, "coeff": torch.tensor([COEFF]), "loss": loss.reshape(1),
                                  "dw": x.grad}
