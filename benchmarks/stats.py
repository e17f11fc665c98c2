"""Means with 95% confidence intervals."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Metric:
    """A mean over ``n`` units (episodes, queries, seeds) with the half-width of its 95% interval
    (None where there is a single unit)."""

    mean: float
    ci95: float | None
    n: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci95": self.ci95, "n": self.n}


def mean_ci(values, use_t: bool = False) -> Metric:
    """Mean and 95% half-width: normal quantile (many episodes/queries), or Student t (few seeds)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = int(v.size)
    if n == 0:
        raise ValueError("mean_ci of no values")
    mean = float(v.mean())
    if n == 1:
        return Metric(mean, None, 1)
    q = stats.t.ppf(0.975, df=n - 1) if use_t else stats.norm.ppf(0.975)
    return Metric(mean, float(q * v.std(ddof=1) / np.sqrt(n)), n)


def single(value: float) -> Metric:
    return Metric(float(value), None, 1)
