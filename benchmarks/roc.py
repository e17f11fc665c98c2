"""Verification ROC from pair scores: points, AUC, EER and TAR at a given FAR."""
from __future__ import annotations

import numpy as np


def roc_points(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), one point per distinct score (ties kept together), from (0, 0) to (1, 1).
    Higher score = more likely the same class."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("an ROC needs both same-class and different-class pairs")
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], same[order]
    tp, fp = np.cumsum(t), np.cumsum(~t)
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tpr = np.r_[0.0, tp[last_of_tie] / n_pos]
    fpr = np.r_[0.0, fp[last_of_tie] / n_neg]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    return fpr, tpr, thresholds


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
