"""PyTorch references for the Caffe-zoo ops (caffe_layers_test.cc): LRN across channels
(F.local_response_norm) and within a channel (sum of squares over a zero-padded size x size window
by avg_pool2d with count_include_pad, Caffe's WITHIN_CHANNEL with k given), softmax over an axis,
the per-channel scale and shift, the power, and concatenation."""
import torch
import torch.nn.functional as F


def _grad_case(name, inputs, fn, g):
    leaves = [t.clone().requires_grad_() for t in inputs]
    y = fn(*leaves)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    arrays = {f"x{i}": t for i, t in enumerate(leaves)}
    arrays.update({"y": y, "dy": dy})
    arrays.update({f"dx{i}": t.grad for i, t in enumerate(leaves)})
    return name, arrays


def lrn_within(x, size, alpha, beta, k):
    pad = (size - 1) // 2
    sq = F.pad(x * x, (pad, size - 1 - pad, pad, size - 1 - pad))
    mean = F.avg_pool2d(sq, size, stride=1)
    return x * (k + alpha * mean) ** -beta


def cases():
    g = torch.Generator().manual_seed(19)
    x = torch.randn((2, 7, 5, 4), generator=g) * 2
    for size in (3, 5, 4):
        yield _grad_case(f"lrn_across_{size}", [x],
                         lambda t, s=size: F.local_response_norm(t, s, alpha=0.3, beta=0.75, k=2.0),
                         g)
    for size in (3, 2):
        yield _grad_case(f"lrn_within_{size}", [x],
                         lambda t, s=size: lrn_within(t, s, 0.5, 0.75, 1.0), g)
    yield _grad_case("softmax_axis1_4d", [torch.randn((3, 5, 4, 2), generator=g) * 3],
                     lambda t: torch.softmax(t, dim=1), g)
    yield _grad_case("softmax_axis2_3d", [torch.randn((2, 3, 6), generator=g) * 3],
                     lambda t: torch.softmax(t, dim=2), g)
    xs = torch.randn((3, 4, 5, 2), generator=g)
    w = torch.randn((4,), generator=g)
    b = torch.randn((4,), generator=g)
    yield _grad_case("scale_channels", [xs, w, b],
                     lambda t, s, c: t * s.view(1, 4, 1, 1) + c.view(1, 4, 1, 1), g)
    w2 = torch.randn((3, 4), generator=g)
    yield _grad_case("scale_axis0_2d", [xs, w2], lambda t, s: t * s.view(3, 4, 1, 1), g)
    xp = torch.rand((4, 6), generator=g) + 0.5
    yield _grad_case("power", [xp], lambda t: (0.5 + 1.5 * t) ** 2.5, g)
    parts = [torch.randn((2, c, 3, 2), generator=g) for c in (1, 3, 2)]
    yield _grad_case("concat_axis1", parts, lambda *ts: torch.cat(ts, dim=1), g)
    parts = [torch.randn((2, 3, h), generator=g) for h in (2, 5)]
    yield _grad_case("concat_axis2", parts, lambda *ts: torch.cat(ts, dim=2), g)
