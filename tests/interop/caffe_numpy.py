"""Caffe's forward in numpy (float64), written from Caffe's documented semantics, for the import
tests to hold ruche's forward to: convolution with groups, pooling rounded up with the clip of a
last window that starts in the padding, cross-channel LRN, BatchNorm with its scale factor plus
Scale, InnerProduct on the flattened input."""
import numpy as np


def conv(x, w, b, stride=1, pad=0, group=1):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    og = o // group
    for g in range(group):
        xs, ws = xp[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for i in range(oh):
            for j in range(ow):
                win = xs[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                y[:, g * og:(g + 1) * og, i, j] = np.einsum("ncij,ocij->no", win, ws)
    return y + (0 if b is None else b[None, :, None, None])


def pool(x, k, s, pad, mode):
    n, c, h, w = x.shape
    ph = int(np.ceil((h + 2 * pad - k) / s)) + 1  # Caffe rounds up ...
    pw = int(np.ceil((w + 2 * pad - k) / s)) + 1
    if pad and (ph - 1) * s >= h + pad:  # ... and drops a last window that starts in the padding
        ph -= 1
    if pad and (pw - 1) * s >= w + pad:
        pw -= 1
    y = np.zeros((n, c, ph, pw))
    for i in range(ph):
        for j in range(pw):
            hs, ws = i * s - pad, j * s - pad
            he, we = min(hs + k, h + pad), min(ws + k, w + pad)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            win = x[:, :, hs:he, ws:we]
            y[:, :, i, j] = win.max(axis=(2, 3)) if mode == "max" else win.sum(axis=(2, 3)) / size
    return y


def lrn(x, n, alpha, beta, k=1.0):
    sq = np.pad(x * x, ((0, 0), (n // 2, n // 2), (0, 0), (0, 0)))
    s = sum(sq[:, i:i + x.shape[1]] for i in range(n))
    return x * (k + alpha / n * s) ** -beta


def bn_scale(x, mean, var, factor, gamma, beta, eps=1e-5):
    f = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    c = lambda v: np.asarray(v, np.float64)[None, :, None, None]  # noqa: E731
    return (x - c(mean * f)) / np.sqrt(c(var * f) + eps) * c(gamma) + c(beta)


def relu(x):
    return np.maximum(x, 0)


def ip(x, w, b):
    return x.reshape(len(x), -1) @ w.reshape(w.shape[-2], -1).T + b.reshape(-1)
