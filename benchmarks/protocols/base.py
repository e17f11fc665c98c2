"""What every protocol returns, and the split it asks for."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol as TypingProtocol

import pandas as pd

from benchmarks.stats import Metric
from datasets.splits import Split
from methods.base import Learner, RunContext


@dataclass
class ProtocolResult:
    """metrics: name -> Metric. curves: name -> table of points (e.g. ROC). artifacts: name -> JSON-able
    data kept beside the record (e.g. the episode indices). units: metric name -> the per-unit values the
    metric is the mean of (one per episode, query, test sample, concept or run), in an order fixed by the
    data seed, so that two learners' values pair unit by unit (``benchmarks.comparison``); metrics that are
    not a mean of independent units (AUC, NMI) have none. replicates: metric name -> bootstrap replicates
    drawn with the data seed (the same resampled classes for every learner), so they pair replicate by
    replicate; for metrics with no units, e.g. verification's AUC."""

    metrics: dict[str, Metric]
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    units: dict[str, Any] = field(default_factory=dict)
    replicates: dict[str, Any] = field(default_factory=dict)


class EvaluationProtocol(TypingProtocol):
    name: str
    split: Any  # a callable (data, seed) -> Split, e.g. datasets.splits.ClassDisjointSplit

    def check(self, split: Split) -> None:
        """Raise a clear error if this split cannot be evaluated (cheap; called before training)."""

    def check_learner(self, learner: Learner) -> None:
        """Raise ``UnsupportedProtocolError`` if the learner lacks what this protocol calls."""

    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult: ...


class UnsupportedProtocolError(TypeError):
    """A learner cannot serve a protocol."""


def require(learner: object, protocol: str, *attributes: str) -> None:
    """Raise ``UnsupportedProtocolError`` unless the learner offers every attribute the protocol uses."""
    missing = [a for a in attributes if getattr(learner, a, None) is None]
    if missing:
        raise UnsupportedProtocolError(
            f"{type(learner).__name__} cannot serve the {protocol} protocol: it has no {', '.join(missing)}. "
            "Pick another protocol for this method, or give the learner what is missing."
        )
