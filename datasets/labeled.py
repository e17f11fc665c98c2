"""The one dataset type every source returns and every learner and protocol reads."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

# LabeledData.partition values: the data set's published split
TRAIN, TEST, GALLERY = 0, 1, 2
QUERY = TEST  # where the test side is split into queries and a gallery (In-shop)
PARTITIONS = (TRAIN, TEST, GALLERY)


@dataclass(frozen=True)
class LabeledData:
    """Inputs with integer class labels.

    x: float tensor, (n, features) for vector data or (n, channels, height, width) for images.
    y: int64 class ids, (n,), indexing into ``classes``.
    classes: one name per class id.
    groups: optional int64 id per sample of a coarser grouping (alphabet, super-class),
        for group-disjoint splits.
    partition: optional int64 per sample, the data set's published split: ``TRAIN`` (0), ``TEST`` (1;
        the queries where the test side has a gallery) or ``GALLERY`` (2); read by
        ``datasets.splits.PublishedSplit``.

    ``x`` may also be a lazy image array (``datasets.image_files.ImageFiles``): anything with ``shape``,
    ``len``, indexing that returns tensors, ``to(device)`` and a lazy ``subset(index)``.
    """

    x: Tensor  # or datasets.image_files.ImageFiles
    y: Tensor
    classes: list[str]
    groups: Tensor | None = None
    name: str = "data"
    partition: Tensor | None = None

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.name}: {self.x.shape[0]} inputs but {self.y.shape[0]} labels")
        if self.y.dtype != torch.int64:
            raise TypeError(f"{self.name}: labels must be int64, got {self.y.dtype}")
        if self.groups is not None and self.groups.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.name}: groups must have one entry per sample")
        if len(self.y) and int(self.y.max()) >= len(self.classes):
            raise ValueError(f"{self.name}: label {int(self.y.max())} has no class name")
        if self.partition is not None:
            if self.partition.shape != self.y.shape or self.partition.dtype != torch.int64:
                raise ValueError(f"{self.name}: partition must be int64 with one entry per sample")
            if len(self.partition) and not bool(torch.isin(self.partition, torch.tensor(PARTITIONS)).all()):
                raise ValueError(f"{self.name}: partition values must be {TRAIN} (train), {TEST} (test or query) "
                                 f"or {GALLERY} (gallery)")

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
        partition = None if self.partition is None else self.partition[index]
        lazy_subset = getattr(self.x, "subset", None)  # a lazy image array: pick the files, decode nothing
        x = lazy_subset(index) if callable(lazy_subset) else self.x[index]
        return replace(self, x=x, y=self.y[index], groups=groups, partition=partition, name=name or self.name)

    def with_inputs(self, x: Tensor) -> "LabeledData":
        return replace(self, x=x)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature standardisation with statistics from the training split only."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, x: Tensor) -> "Standardizer":
        if not isinstance(x, Tensor):
            raise TypeError(f"standardisation needs the inputs as one tensor, but they are {type(x).__name__} "
                            "(images decoded on demand); set dataset.standardize=false: such data sets "
                            "normalise in their transform (dataset.source.transform.mean / std)")
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant features stay as they are
        return cls(mean=mean, std=std)

    def __call__(self, data: LabeledData) -> LabeledData:
        return data.with_inputs((data.x - self.mean) / self.std)
