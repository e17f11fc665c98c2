"""Train/test splits drawn from a seed.

``ClassDisjointSplit`` holds out whole classes (few-shot, retrieval, verification: the test classes
are never seen in training). ``WithinClassSplit`` holds out samples of every class (the k-NN protocol
of LMNN and MMC).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from datasets.labeled import LabeledData


class SplitError(ValueError):
    """A split that the data cannot give."""


@dataclass(frozen=True)
class Split:
    train: LabeledData
    test: LabeledData
    train_index: torch.Tensor
    test_index: torch.Tensor
    kind: str
    # The input transform fitted on the training side and already applied to both sides (the runner's
    # standardisation), or None. A protocol that reads test inputs of its own applies it to them too.
    transform: Callable[[LabeledData], LabeledData] | None = None

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "train_classes": [int(c) for c in self.train.present_classes],
            "test_classes": [int(c) for c in self.test.present_classes],
            "n_train": len(self.train),
            "n_test": len(self.test),
        }


def _count(value: float | int, total: int, what: str) -> int:
    """A count given either as a fraction in (0, 1) or as an integer."""
    n = round(value * total) if isinstance(value, float) and value < 1 else int(value)
    if not 1 <= n < total:
        raise SplitError(f"{what}={value} leaves {n} of {total}; both sides need at least one")
    return n


@dataclass(frozen=True)
class ClassDisjointSplit:
    """Hold out ``test_classes`` whole classes (a fraction, or a count) chosen by the seed."""

    test_classes: float | int = 0.5

    def __call__(self, data: LabeledData, seed: int) -> Split:
        classes = data.present_classes
        n_test = _count(self.test_classes, len(classes), "test_classes")
        gen = torch.Generator().manual_seed(seed)
        order = classes[torch.randperm(len(classes), generator=gen)]
        test_classes = order[:n_test]
        is_test = torch.isin(data.y, test_classes)
        train_index = torch.nonzero(~is_test).flatten()
        test_index = torch.nonzero(is_test).flatten()
        return Split(data.subset(train_index, f"{data.name}/train"), data.subset(test_index, f"{data.name}/test"),
                     train_index, test_index, kind="class_disjoint")


@dataclass(frozen=True)
class WithinClassSplit:
    """Stratified split: ``test_fraction`` of every class's samples go to the test side."""

    test_fraction: float = 0.3

    def __call__(self, data: LabeledData, seed: int) -> Split:
        if not 0 < self.test_fraction < 1:
            raise SplitError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        gen = torch.Generator().manual_seed(seed)
        train_parts, test_parts = [], []
        for c in data.present_classes:
            members = torch.nonzero(data.y == c).flatten()
            if len(members) < 2:
                raise SplitError(f"class {data.classes[int(c)]!r} has {len(members)} sample; "
                                 "a within-class split needs at least 2 per class")
            members = members[torch.randperm(len(members), generator=gen)]
            n_test = min(max(1, round(self.test_fraction * len(members))), len(members) - 1)
            test_parts.append(members[:n_test])
            train_parts.append(members[n_test:])
        train_index = torch.sort(torch.cat(train_parts)).values
        test_index = torch.sort(torch.cat(test_parts)).values
        return Split(data.subset(train_index, f"{data.name}/train"), data.subset(test_index, f"{data.name}/test"),
                     train_index, test_index, kind="within_class")
