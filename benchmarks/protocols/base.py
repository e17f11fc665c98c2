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
    data kept beside the record (e.g. the episode indices)."""

    metrics: dict[str, Metric]
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)


class EvaluationProtocol(TypingProtocol):
    name: str
    split: Any  # a callable (data, seed) -> Split, e.g. datasets.splits.ClassDisjointSplit

    def check(self, split: Split) -> None:
        """Raise a clear error if this split cannot be evaluated (cheap; called before training)."""

    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult: ...


class UnsupportedProtocolError(TypeError):
    """A learner cannot serve a protocol."""
