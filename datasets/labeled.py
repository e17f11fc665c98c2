"""The one dataset type every source returns and every learner and protocol reads."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class LabeledData:
    """Inputs with integer class labels.

    x: float tensor, (n, features) for vector data or (n, channels, height, width) for images.
    y: int64 class ids, (n,), indexing into ``classes``.
    classes: one name per class id.
    groups: optional int64 id per sample of a coarser grouping (alphabet, super-class),
        for group-disjoint splits.
    """

    x: Tensor
    y: Tensor
    classes: list[str]
    groups: Tensor | None = None
    name: str = "data"

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.name}: {self.x.shape[0]} inputs but {self.y.shape[0]} labels")
        if self.y.dtype != torch.int64:
            raise TypeError(f"{self.name}: labels must be int64, got {self.y.dtype}")
        if self.groups is not None and self.groups.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.name}: groups must have one entry per sample")
        if len(self.y) and int(self.y.max()) >= len(self.classes):
            raise ValueError(f"{self.name}: label {int(self.y.max())} has no class name")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def present_classes(self) -> Tensor:
        """Sorted ids of the classes that have at least one sample here."""
        return torch.unique(self.y)

    def counts(self) -> Tensor:
        """Samples per class id (length ``len(classes)``)."""
        return torch.bincount(self.y, minlength=len(self.classes))

    def subset(self, index: Tensor, name: str | None = None) -> "LabeledData":
        index = torch.as_tensor(index, dtype=torch.long)
        groups = None if self.groups is None else self.groups[index]
        return replace(self, x=self.x[index], y=self.y[index], groups=groups, name=name or self.name)

    def with_inputs(self, x: Tensor) -> "LabeledData":
        return replace(self, x=x)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature standardisation with statistics from the training split only."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, x: Tensor) -> "Standardizer":
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant features stay as they are
        return cls(mean=mean, std=std)

    def __call__(self, data: LabeledData) -> LabeledData:
        return data.with_inputs((data.x - self.mean) / self.std)
