"""References for the classification metrics (tests/metrics/metrics_reference_test.cc), computed
with numpy by sklearn's definitions (sklearn is not installed): precision/recall/F1 with
zero_division=0 and macro over the labels present in y_true or y_pred, top-k by a stable sort,
ROC AUC by counting pairs (independent of the rank formula the C++ uses), the ROC curve and the
threshold choices by brute force over every distinct score."""
import numpy as np


def prf(y, pred, classes):
    p, r, f, s = (np.zeros(classes) for _ in range(4))
    for c in range(classes):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        p[c] = tp / (tp + fp) if tp + fp else 0.0
        r[c] = tp / (tp + fn) if tp + fn else 0.0
        f[c] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        s[c] = np.sum(y == c)
    present = np.isin(np.arange(classes), np.union1d(y, pred))
    macro = np.array([p[present].mean(), r[present].mean(), f[present].mean()])
    weighted = np.array([np.sum(m * s) / s.sum() for m in (p, r, f)])
    return p, r, f, s, macro, weighted


def pairwise_auc(score, positive):
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return np.nan
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


def multiclass_case(rng, n, classes, absent):
    y = rng.integers(0, classes, size=n)
    y[y == absent] = (absent + 1) % classes
    logits = rng.normal(size=(n, classes)) * 1.5
    logits[np.arange(n), y] += 1.5  # better than chance
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = (np.round(probs * 20) / 20).astype(np.float32)  # coarse: many ties
    pred = np.argmax(probs, axis=1)  # first maximum
    order = np.argsort(-probs, axis=1, kind="stable")  # ties: lower index first
    top = {k: np.mean([y[i] in order[i, :k] for i in range(n)]) for k in (1, 5)}
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    p, r, f, s, macro, weighted = prf(y, pred, classes)
    auc = np.array([pairwise_auc(probs[:, c], y == c) for c in range(classes)])
    return {
        "probs": probs, "labels": y.astype(np.int64), "confusion": confusion,
        "precision": p, "recall": r, "f1": f, "support": s.astype(np.int64),
        "macro": macro, "weighted": weighted, "accuracy": np.array([np.mean(pred == y)]),
        "top1": np.array([top[1]]), "top5": np.array([top[5]]),
        "auc": auc, "auc_macro": np.array([np.nanmean(auc)]),
    }


def binary_split(rng, n):
    y = rng.random(n) < 0.4
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return (np.round(score * 40) / 40).astype(np.float32), y  # ties across classes


def counts_at(score, y, t):
    pred = score >= t
    return np.array([np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & ~y), np.sum(~pred & y)])


def binary_case(rng):
    score, y = binary_split(rng, 150)
    score2, y2 = binary_split(rng, 90)
    thresholds = np.unique(score)[::-1]
    pos, neg = y.sum(), (~y).sum()
    tpr = np.array([0.0] + [np.sum((score >= t) & y) / pos for t in thresholds])
    fpr = np.array([0.0] + [np.sum((score >= t) & ~y) / neg for t in thresholds])
    recall = np.array([np.sum((score >= t) & y) / pos for t in thresholds])
    precision = np.array([np.sum((score >= t) & y) / np.sum(score >= t) for t in thresholds])
    t_recall = thresholds[recall >= 0.8].max()
    t_precision = thresholds[precision >= 0.7].min()
    return {
        "score": score, "labels": y.astype(np.int64), "score2": score2,
        "labels2": y2.astype(np.int64),
        "fpr": fpr, "tpr": tpr, "thresholds": np.concatenate([[np.inf], thresholds]),
        "auc": np.array([pairwise_auc(score, y)]),
        "t_recall": np.array([t_recall], dtype=np.float32),
        "t_precision": np.array([t_precision], dtype=np.float32),
        "counts_recall": counts_at(score2, y2, t_recall).astype(np.int64),
        "counts_precision": counts_at(score2, y2, t_precision).astype(np.int64),
    }


def cases():
    rng = np.random.default_rng(2024)
    yield "metrics_multiclass", multiclass_case(rng, 300, 8, absent=-1)
    yield "metrics_absent_class", multiclass_case(rng, 120, 7, absent=3)
    yield "metrics_binary", binary_case(rng)
