"""PyTorch references for softmax over dim 1 (softmax_test.cc); one case has logits near 100 so a
softmax without the max subtraction would overflow."""
import torch


def cases():
    g = torch.Generator().manual_seed(12)
    for name, offset in (("small", 0.0), ("large", 100.0)):
        x = (torch.randn((6, 11), generator=g) * 4 + offset).requires_grad_()
        y = torch.softmax(x, dim=1)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        yield f"softmax_{name}", {"x": x, "y": y, "dy": dy, "dx": x.grad}
