"""Bounds on numeric parameters, written into their annotations.

``n_way: Count`` says what the parameter takes (a whole number of at least 1) where the parameter is
declared, so the runner's argument check (benchmarks/argument_types.py) refuses ``n_way=0`` or ``lr=-0.1``
before the data set is read, and a suite's or a tuning plan's dry run refuses it without reading anything.
At run time the annotation is the plain type (``typing.Annotated`` carries the bound as metadata).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated


@dataclass(frozen=True)
class AtLeast:
    """The value is >= ``bound`` (``strict``: > ``bound``)."""

    bound: float
    strict: bool = False

    def holds(self, value: float) -> bool:
        return value > self.bound if self.strict else value >= self.bound

    def words(self) -> str:
        bound = int(self.bound) if float(self.bound).is_integer() else self.bound
        return f"above {bound}" if self.strict else f"of at least {bound}"


Count = Annotated[int, AtLeast(1)]  # ways, shots, queries, episodes, batch sizes, dimensions
CountOrZero = Annotated[int, AtLeast(0)]  # bootstrap replicates (0: none), extra members
Steps = CountOrZero  # training steps or solver iterations (0 only for an untrained baseline: runner's check)
Positive = Annotated[float, AtLeast(0, strict=True)]  # learning rates, temperatures, scales, tolerances
NonNegative = Annotated[float, AtLeast(0)]  # margins, weights of a loss term
