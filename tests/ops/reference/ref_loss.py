"""PyTorch references for F.cross_entropy (weight=, label_smoothing=, ignore_index=, mean
reduction), mse_loss, l1_loss, smooth_l1_loss and binary_cross_entropy_with_logits (loss_test.cc).
Each case stores the loss as [1], the upstream gradient dloss as [1] and the gradient of the
logits (or predictions) scaled by it."""
import torch
import torch.nn.functional as F

DLOSS = 0.7


def cross_entropy_case(g, n, c, smoothing, weighted, ignore=None):
    """ignore: a label for ignore_index=, given to every third row (a value outside [0, c)) or
    found among the random labels (a class)."""
    logits = (torch.randn((n, c), generator=g) * 2).requires_grad_()
    labels = torch.randint(0, c, (n,), generator=g)
    if ignore is not None and not 0 <= ignore < c:
        labels[::3] = ignore
    weight = torch.rand((c,), generator=g) * 2 + 0.1 if weighted else None
    loss = F.cross_entropy(logits, labels, weight=weight, label_smoothing=smoothing,
                           ignore_index=-100 if ignore is None else ignore)
    loss.backward(torch.tensor(DLOSS))
    arrays = {"logits": logits, "labels": labels.to(torch.int32), "probs": torch.softmax(logits, 1),
              "loss": loss.reshape(1), "dloss": torch.tensor([DLOSS]), "dlogits": logits.grad,
              "smoothing": torch.tensor([smoothing])}
    if weighted:
        arrays["weight"] = weight
    if ignore is not None:
        assert (labels == ignore).any() and (labels != ignore).any()
        arrays["ignore"] = torch.tensor([ignore], dtype=torch.int32)
    return arrays


def cases():
    g = torch.Generator().manual_seed(13)
    yield "ce_plain", cross_entropy_case(g, 9, 7, 0.0, False)
    yield "ce_smoothing", cross_entropy_case(g, 9, 7, 0.1, False)
    yield "ce_weights", cross_entropy_case(g, 9, 7, 0.0, True)
    yield "ce_weights_smoothing", cross_entropy_case(g, 9, 7, 0.2, True)
    yield "ce_one_class_heavy", cross_entropy_case(g, 33, 3, 0.3, True)
    yield "ce_ignore_outside", cross_entropy_case(g, 9, 7, 0.0, False, ignore=-100)
    yield "ce_ignore_class", cross_entropy_case(g, 12, 4, 0.2, True, ignore=2)

    pred = torch.randn((5, 6), generator=g).requires_grad_()
    target = torch.randn((5, 6), generator=g)
    loss = F.mse_loss(pred, target)
    loss.backward(torch.tensor(DLOSS))
    yield "mse", {"pred": pred, "target": target, "loss": loss.reshape(1),
                  "dloss": torch.tensor([DLOSS]), "dpred": pred.grad}

    # The pointwise losses (ops::pointwise_loss_*): L1Loss, SmoothL1Loss (beta 1) and
    # BCEWithLogitsLoss, mean over every element. Large logits check the stable form.
    for name, fn, scale, binary in (
            ("l1", F.l1_loss, 1.0, False),
            ("smooth_l1", lambda p, t: F.smooth_l1_loss(p, t, beta=1.0), 1.5, False),
            ("bce_logits", F.binary_cross_entropy_with_logits, 8.0, True)):
        pred = (torch.randn((4, 3, 5), generator=g) * scale).requires_grad_()
        target = torch.rand((4, 3, 5), generator=g)
        if binary:
            target[0] = (target[0] > 0.5).float()  # hard 0/1 labels beside soft targets
        loss = fn(pred, target)
        loss.backward(torch.tensor(DLOSS))
        yield name, {"pred": pred, "target": target, "loss": loss.reshape(1),
                     "dloss": torch.tensor([DLOSS]), "dpred": pred.grad}
