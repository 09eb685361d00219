"""PyTorch references for relu, leaky_relu, sigmoid, tanh and heaviside (activation_test.cc)."""
import torch
import torch.nn.functional as F

FUNCTIONS = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def cases():
    g = torch.Generator().manual_seed(11)
    for name, f in FUNCTIONS.items():
        x = torch.randn((3, 5, 7), generator=g) * 3
        x = (x + 0.05 * torch.sign(x)).requires_grad_()  # no element at the kink 0
        y = f(x)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        yield f"act_{name}", {"x": x, "y": y, "dy": dy, "dx": x.grad}
    x = torch.randint(-2, 3, (4, 9), generator=g).float() * 0.5  # many exact zeros
    yield "act_heaviside", {"x": x, "y": torch.heaviside(x, torch.tensor(0.25))}
