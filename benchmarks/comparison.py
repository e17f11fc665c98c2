"""Paired comparison of every learner with the best one, over identical episodes, queries or classes.

Every learner of a study is evaluated on the very same units (episodes, queries, test samples, concepts,
runs: fixed by the data seed) and, for metrics that are not a mean over units (verification's AUC, EER,
TAR@FAR), on the very same bootstrap resamples of the held-out classes. So the difference between two
learners can be measured unit by unit, which is far sharper than comparing two intervals.

For each (dataset, protocol, metric) the best row is the one with the best mean. Each other row is compared
with it on the training seeds both have, through a two-level paired bootstrap of the mean difference
(best minus other, signed so that positive means the best is better):
- ``unit`` metrics: each draw resamples the seeds (with replacement, the same seeds for both learners) and
  the units (likewise), and averages the difference over both;
- ``replicate`` metrics: each draw resamples the seeds and takes one of the stored class-bootstrap
  replicates (the same resample of classes for both learners).
With one seed only the units (or replicates) are resampled: the interval then says nothing about training
noise, and the table says so. A row whose 95% interval of the difference holds 0 is a statistical tie with
the best. No correction for the many comparisons in a table is made: a tie is "not shown to differ".
Rows with no stored units (NMI, a record written before units existed) are not tested.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.records import REPLICATE, UNIT

KEYS = ["dataset", "protocol", "method"]


def load_units(records: list[dict]) -> dict[tuple, dict[str, np.ndarray]]:
    """(dataset, protocol, method, seed) -> {"unit.<metric>" / "replicate.<metric>": values} for every ok
    record that stored units."""
    out = {}
    for rec in records:
        entry = rec.get("units")
        if rec.get("status") != "ok" or not entry:
            continue
        with np.load(Path(rec["_dir"]) / entry["file"]) as data:
            out[(rec["dataset"], rec["protocol"], rec["method"], rec["seed"])] = {k: data[k] for k in data.files}
    return out


@dataclass(frozen=True)
class PairedDifference:
    """Best minus other (positive: the best is better), with its 95% percentile interval."""

    mean: float
    low: float
    high: float
    kind: str      # "unit" or "replicate"
    n_seeds: int
    n_units: int

    @property
    def tie(self) -> bool:
        return self.low <= 0.0 <= self.high


def paired_bootstrap(best: np.ndarray, other: np.ndarray, kind: str, n_boot: int = 2000,
                     seed: int = 0) -> PairedDifference:
    """``best`` and ``other``: (seeds, units) arrays of per-unit values (kind "unit") or paired bootstrap
    replicates (kind "replicate"), already signed so that larger is better, rows the same seeds."""
    d = np.asarray(best, dtype=np.float64) - np.asarray(other, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"paired values must be a non-empty (seeds, units) array, got shape {d.shape}")
    if kind not in (UNIT.rstrip("."), REPLICATE.rstrip(".")):
        raise ValueError(f"unknown kind of paired values {kind!r}: 'unit' or 'replicate'")
    n_seeds, n_units = d.shape
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    step = max(1, int(2e6 // n_units))  # draws per chunk: (chunk, units) arrays of at most ~16 MB
    for start in range(0, n_boot, step):
        size = min(step, n_boot - start)
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=size) if n_seeds > 1 \
            else np.ones((size, 1))
        per_unit = seed_counts @ d / n_seeds  # (draws, units): the difference averaged over the resampled seeds
        if kind == UNIT.rstrip("."):
            picks = rng.integers(0, n_units, (size, n_units))  # units drawn with replacement, per draw
            draws[start:start + size] = np.take_along_axis(per_unit, picks, axis=1).mean(1)
        else:
            draws[start:start + size] = per_unit[np.arange(size), rng.integers(0, n_units, size)]
    low, high = np.quantile(draws, [0.025, 0.975])
    return PairedDifference(float(d.mean()), float(low), float(high), kind, n_seeds, n_units)


def _paired_values(units: dict, key: tuple, metric: str, seeds: list[int]) -> tuple[str, np.ndarray] | None:
    """The (seeds, units) array of one row's metric over ``seeds``, or None if a seed lacks it."""
    for prefix in (UNIT, REPLICATE):
        rows = [units.get((*key, s), {}).get(prefix + metric) for s in seeds]
        if rows and all(r is not None for r in rows):
            if len({len(r) for r in rows}) != 1:
                return None
            return prefix.rstrip("."), np.stack([np.asarray(r, dtype=np.float64) for r in rows])
    return None


def _seeds(long_ok: pd.DataFrame, key: tuple, metric: str) -> list[int]:
    sel = long_ok[(long_ok["dataset"] == key[0]) & (long_ok["protocol"] == key[1]) & (long_ok["method"] == key[2])
                  & (long_ok["metric"] == metric)]
    return sorted(int(s) for s in sel["seed"].unique())


def compare_with_best(table: pd.DataFrame, long: pd.DataFrame, units: dict, n_boot: int = 2000) -> pd.DataFrame:
    """``table`` (``leaderboard.aggregate``) with the paired comparison's columns added: ``best`` (this row
    has the best mean), ``vs_best`` ("best", "tie", "worse", or "untested" with the reason), ``diff_mean``,
    ``diff_low``, ``diff_high`` (best minus this row, positive = the best is better), ``diff_over`` (what
    was resampled: "units+seeds", "units", "replicates+seeds", "replicates")."""
    out = table.copy()
    for col, default in (("best", False), ("vs_best", ""), ("diff_mean", np.nan), ("diff_low", np.nan),
                         ("diff_high", np.nan), ("diff_over", "")):
        out[col] = default
    if out.empty:
        return out
    long_ok = long[long["status"] == "ok"]
    for (dataset, protocol, metric), group in out.groupby(["dataset", "protocol", "metric"], sort=False):
        sign = -1.0 if bool(group["lower_is_better"].iloc[0]) else 1.0
        best_idx = (sign * group["mean"]).idxmax()
        out.loc[best_idx, ["best", "vs_best"]] = [True, "best"]
        best_key = (dataset, protocol, out.loc[best_idx, "method"])
        # ties in the mean itself (e.g. two rows at 1.000) are all best
        for idx in group.index:
            if idx == best_idx:
                continue
            key = (dataset, protocol, out.loc[idx, "method"])
            if np.isclose(out.loc[idx, "mean"], out.loc[best_idx, "mean"], rtol=0, atol=1e-12):
                out.loc[idx, ["best", "vs_best"]] = [True, "best"]
                continue
            seeds = sorted(set(_seeds(long_ok, key, metric)) & set(_seeds(long_ok, best_key, metric)))
            a, b = (_paired_values(units, best_key, metric, seeds), _paired_values(units, key, metric, seeds)) \
                if seeds else (None, None)
            if a is None or b is None or a[0] != b[0] or a[1].shape != b[1].shape:
                out.loc[idx, "vs_best"] = "untested" if seeds else "untested (no common seed)"
                continue
            diff = paired_bootstrap(sign * a[1], sign * b[1], a[0], n_boot=n_boot, seed=0)
            over = ("units" if diff.kind == "unit" else "replicates") + ("+seeds" if diff.n_seeds > 1 else "")
            out.loc[idx, ["vs_best", "diff_mean", "diff_low", "diff_high", "diff_over"]] = [
                "tie" if diff.tie else "worse", diff.mean, diff.low, diff.high, over]
    return out
