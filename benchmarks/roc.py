"""Verification ROC from pair scores: points, AUC, EER and TAR at a given FAR."""
from __future__ import annotations

import numpy as np


def roc_points(scores: np.ndarray, same: np.ndarray,
               weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), one point per distinct score (ties kept together), from (0, 0) to (1, 1).
    Higher score = more likely the same class. ``weights`` (>= 0, one per pair) count a pair that many
    times, as if it were repeated; pairs of weight 0 are left out."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    return _roc_sorted(scores[order], same[order], None if weights is None else np.asarray(weights)[order])


def _roc_sorted(s: np.ndarray, t: np.ndarray, w: np.ndarray | None):
    if w is None:
        tp, fp = np.cumsum(t, dtype=np.float64), np.cumsum(~t, dtype=np.float64)
    else:
        w = w.astype(np.float64)
        tp, fp = np.cumsum(w * t), np.cumsum(w * ~t)
    n_pos, n_neg = tp[-1] if len(tp) else 0.0, fp[-1] if len(fp) else 0.0
    if n_pos <= 0 or n_neg <= 0:
        raise ValueError("an ROC needs both same-class and different-class pairs")
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tpr = np.r_[0.0, tp[last_of_tie] / n_pos]
    fpr = np.r_[0.0, fp[last_of_tie] / n_neg]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    return fpr, tpr, thresholds


def class_bootstrap(scores: np.ndarray, class_a: np.ndarray, class_b: np.ndarray, statistics: dict,
                    n_boot: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """Bootstrap over the held-out classes (subjects), the unit a class-disjoint verification result
    generalises over. Each replicate draws the classes with replacement; a class drawn w times counts w
    times: its same-class pairs get weight w, a different-class pair of classes drawn w and v times gets
    weight w * v (every copy against every copy), and pairs between two copies of one class are left out.
    ``statistics`` maps a name to ``f(fpr, tpr)``; returns each statistic's replicate values. Replicates
    that draw a single distinct class (no different-class pairs) are skipped."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, a, b = scores[order], np.asarray(class_a)[order], np.asarray(class_b)[order]
    t = a == b
    classes = np.unique(np.r_[a, b])
    a_idx, b_idx = np.searchsorted(classes, a), np.searchsorted(classes, b)
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {name: [] for name in statistics}
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, len(classes), len(classes)), minlength=len(classes)).astype(np.float64)
        if (counts > 0).sum() < 2:
            continue
        w = np.where(t, counts[a_idx], counts[a_idx] * counts[b_idx])
        try:
            fpr, tpr, _ = _roc_sorted(s, t, w)
        except ValueError:  # no same-class pair among the classes drawn
            continue
        for name, fn in statistics.items():
            out[name].append(fn(fpr, tpr))
    return {name: np.asarray(v) for name, v in out.items()}


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC by the trapezoid rule (ties count as half, as in scikit-learn)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Equal error rate: where the false-accept rate equals the false-reject rate (linear interpolation)."""
    fnr = 1 - tpr
    diff = fpr - fnr  # rises from -1 to +1 along the curve
    i = int(np.argmax(diff >= 0))
    if i == 0:
        return float(fpr[0])
    a, b = diff[i - 1], diff[i]
    w = 0.0 if b == a else -a / (b - a)
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """The highest true-accept rate among thresholds whose false-accept rate is at most ``far``."""
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


def thin(fpr: np.ndarray, tpr: np.ndarray, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points for storing and plotting, spaced evenly on a log-FPR axis,
    always keeping both ends."""
    if len(fpr) <= max_points:
        return fpr, tpr
    grid = np.unique(np.r_[0.0, np.logspace(-5, 0, max_points - 2), 1.0])
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    idx = np.unique(np.r_[0, idx, len(fpr) - 1])
    return fpr[idx], tpr[idx]
