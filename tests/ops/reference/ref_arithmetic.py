"""PyTorch references for add, axpy and scale (arithmetic_test.cc)."""
import torch


def cases():
    g = torch.Generator().manual_seed(15)
    a = torch.randn((3, 4, 5), generator=g)
    b = torch.randn((3, 4, 5), generator=g)
    alpha = -0.35
    yield "arith", {"a": a, "b": b, "alpha": torch.tensor([alpha]), "add": a + b,
                    "axpy": b + alpha * a, "scale": alpha * a}
