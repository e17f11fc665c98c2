"""Bounds on numeric parameters, written into their annotations.

``n_way: TwoOrMore`` says what the parameter takes (a whole number of at least 2) where the parameter is
declared, so the runner's argument check (benchmarks/argument_types.py) refuses ``n_way=1`` or
``outlier_fraction=1.5`` before the data set is read, and a suite's or a tuning plan's dry run refuses it
without reading anything. At run time the annotation is the plain type (``typing.Annotated`` carries the
bounds as metadata). Each bound is the one the code needs: 1-way episodes score 1.0 whatever the learner,
and a batch-normalised net cannot train on batches of one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


@dataclass(frozen=True)
class AtLeast:
    """The value is >= ``bound`` (``strict``: > ``bound``)."""

    bound: float
    strict: bool = False

    def holds(self, value: float) -> bool:
        return value > self.bound if self.strict else value >= self.bound

    def words(self) -> str:
        return f"above {_shown(self.bound)}" if self.strict else f"of at least {_shown(self.bound)}"


@dataclass(frozen=True)
class AtMost:
    """The value is <= ``bound`` (``strict``: < ``bound``)."""

    bound: float
    strict: bool = False

    def holds(self, value: float) -> bool:
        return value < self.bound if self.strict else value <= self.bound

    def words(self) -> str:
        return f"below {_shown(self.bound)}" if self.strict else f"at most {_shown(self.bound)}"


Count = Annotated[int, AtLeast(1)]  # shots, queries, episodes, dimensions, sizes
TwoOrMore = Annotated[int, AtLeast(2)]  # ways (1-way episodes are always right), batches a batch norm trains on
CountOrZero = Annotated[int, AtLeast(0)]  # bootstrap replicates (0: none), extra members
Steps = CountOrZero  # training steps or solver iterations (0 only for an untrained baseline: the runner's check)
Positive = Annotated[float, AtLeast(0, strict=True)]  # temperatures, scales, margins, variance floors
NonNegative = Annotated[float, AtLeast(0)]  # weights of a loss term, tolerances
Fraction = Annotated[float, AtLeast(0), AtMost(1)]  # a share: polysemous concepts, LMNN's push weight
FractionBelowOne = Annotated[float, AtLeast(0), AtMost(1, strict=True)]  # outliers (a set keeps an inlier)
PositiveFraction = Annotated[float, AtLeast(0, strict=True), AtMost(1)]  # false accept rates
