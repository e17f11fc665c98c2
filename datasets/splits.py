"""Train/test splits drawn from a seed.

``ClassDisjointSplit`` holds out whole classes (few-shot, retrieval, verification: the test classes
are never seen in training). ``WithinClassSplit`` holds out samples of every class (the k-NN protocol
of LMNN and MMC). ``PublishedSplit`` follows the split a data set's publishers fixed
(``LabeledData.partition``: CUB-200-2011, Cars196, Stanford Online Products, In-shop), whatever the seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from datasets.labeled import GALLERY, TRAIN, LabeledData


class SplitError(ValueError):
    """A split that the data cannot give."""


QUERY_ROLE, GALLERY_ROLE = 0, 1  # Split.test_roles values


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
    # Per test sample: QUERY_ROLE (0) or GALLERY_ROLE (1), where the test side is queries searched in a
    # separate gallery (In-shop); None: every test sample is a query searched among all the others.
    test_roles: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.test_roles is not None and tuple(self.test_roles.shape) != (len(self.test),):
            raise ValueError(f"test_roles has shape {tuple(self.test_roles.shape)}; it needs one entry per test "
                             f"sample ({len(self.test)})")

    def describe(self) -> dict:
        described = {
            "kind": self.kind,
            "train_classes": [int(c) for c in self.train.present_classes],
            "test_classes": [int(c) for c in self.test.present_classes],
            "n_train": len(self.train),
            "n_test": len(self.test),
        }
        if self.test_roles is not None:
            described["n_query"] = int((self.test_roles == QUERY_ROLE).sum())
            described["n_gallery"] = int((self.test_roles == GALLERY_ROLE).sum())
        return described


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


@dataclass(frozen=True)
class PublishedSplit:
    """The split published with the data set, read from ``LabeledData.partition``: samples marked train
    train, the rest are the test side (the seed plays no part). Where the test side has gallery samples
    (In-shop), ``test_roles`` marks each test sample as a query (0) or a gallery item (1); otherwise it is
    None (all-vs-all retrieval among the test samples)."""

    def __call__(self, data: LabeledData, seed: int) -> Split:
        if data.partition is None:
            raise SplitError(f"{data.name} has no published split (LabeledData.partition is None); use a data set "
                             "that ships one (dataset=cub, cars196, sop, inshop) or a seeded split such as "
                             "datasets.splits.ClassDisjointSplit (e.g. protocol=retrieval)")
        is_train = data.partition == TRAIN
        train_index = torch.nonzero(is_train).flatten()
        test_index = torch.nonzero(~is_train).flatten()
        if not len(train_index) or not len(test_index):
            side = "training" if not len(train_index) else "test"
            raise SplitError(f"{data.name}: the published split leaves no {side} samples")
        is_gallery = data.partition[test_index] == GALLERY
        roles = None
        if bool(is_gallery.any()):
            if bool(is_gallery.all()):
                raise SplitError(f"{data.name}: the published test side is all gallery, with no queries")
            roles = torch.where(is_gallery, GALLERY_ROLE, QUERY_ROLE).to(torch.int64)
        return Split(data.subset(train_index, f"{data.name}/train"), data.subset(test_index, f"{data.name}/test"),
                     train_index, test_index, kind="published", test_roles=roles)


VALIDATION_SEED_OFFSET = 104729  # the validation split's seed: data_seed + this, never the test split's seed


def validation_split(split: Split, make_split: Callable[[LabeledData, int], Split], seed: int) -> Split:
    """The training side of ``split`` split again by ``make_split`` (the protocol's own split), for tuning:
    the learner trains on part of the training classes (or samples) and is scored on the rest, so the
    test classes are never seen while hyperparameters are chosen. Indices stay indices into the data set."""
    try:
        inner = make_split(split.train, seed + VALIDATION_SEED_OFFSET)
    except SplitError as exc:
        raise SplitError(f"validation=true splits the training side ({len(split.train)} samples, "
                         f"{len(split.train.present_classes)} classes) again with the protocol's split, which "
                         f"failed: {str(exc).rstrip('.')}. Use data with more training classes, or a protocol that asks for "
                         "fewer (e.g. a smaller n_way)") from None
    if inner.test_roles is not None:
        raise SplitError("validation=true is not available for a query/gallery split (In-shop)")
    return Split(inner.train, inner.test, split.train_index[inner.train_index], split.train_index[inner.test_index],
                 kind=f"validation ({inner.kind})")
