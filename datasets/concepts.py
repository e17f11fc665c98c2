"""Noisy concept sets: what a web image search returns for a query, built from labelled data.

A *concept* is one class, or the union of two classes (a polysemous concept, like "jaguar": the animal
and the car). Its *defining set* holds ``set_size`` samples, of which ``round(outlier_fraction *
set_size)`` are outliers drawn from classes outside the concept and the rest members of the concept (for a
polysemous concept, split as evenly as possible between its two classes). No negatives are given: a
learner sees the defining set only.

- ``concept_sets``: the evaluation concepts of a split, from a seed: every class (or every pair of
  classes) ``repeats`` times, each with its own defining set. The same seed gives the same sets for every
  learner.
- ``ConceptSampler``: training learning problems (Set2Model's meta-training): a random concept of the
  training classes, its defining set, and ``n_positives`` further members and ``n_negatives`` samples of
  other classes, none of them in the defining set.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ConceptSets:
    """``concepts`` (C, 2) class ids, the second -1 for a one-class concept; ``defining`` (C, P) sample
    indices; ``outlier`` (C, P) True where the sample is not of the concept."""

    concepts: Tensor
    defining: Tensor
    outlier: Tensor

    def __len__(self) -> int:
        return len(self.concepts)

    def relevant(self, labels: Tensor) -> Tensor:
        """(C, n) True where ``labels`` belong to concept c."""
        first = labels[None, :] == self.concepts[:, :1]
        second = labels[None, :] == self.concepts[:, 1:]
        return first | second


def n_outliers(set_size: int, outlier_fraction: float) -> int:
    return int(round(outlier_fraction * set_size))


def members_per_class(set_size: int, outlier_fraction: float, polysemous: bool) -> tuple[int, ...]:
    """How many members of each of the concept's classes a defining set holds."""
    members = set_size - n_outliers(set_size, outlier_fraction)
    return (members - members // 2, members // 2) if polysemous else (members,)


def check_concept_shape(labels: Tensor, set_size: int, outlier_fraction: float, polysemous: bool,
                        spare: int = 1, spare_outside: int = 0, where: str = "the split") -> None:
    """Raise a clear error if ``labels`` cannot give such defining sets with ``spare`` members of each
    concept class left over (for the pool or the positives) and ``spare_outside`` samples outside the
    concept besides the outliers (for the negatives)."""
    if set_size < 1:
        raise ValueError(f"a defining set needs at least one sample, got set_size={set_size}")
    if not 0 <= outlier_fraction < 1:
        raise ValueError(f"outlier_fraction must be in [0, 1), got {outlier_fraction}")
    counts = torch.bincount(labels)
    present = torch.nonzero(counts).flatten()
    needed_classes = 3 if polysemous else 2
    if len(present) < needed_classes:
        fix = ("polysemous=false scores one-class concepts alone (they need 2), or " if polysemous and len(present) == 2
               else "")
        raise ValueError(f"{'polysemous ' if polysemous else ''}concepts need {needed_classes} classes in {where}, "
                         f"it has {len(present)}: {fix}use data with more classes there")
    need = max(members_per_class(set_size, outlier_fraction, polysemous)) + spare
    short = present[counts[present] < need]
    if len(short):
        raise ValueError(f"a defining set of {set_size} with {outlier_fraction:.0%} outliers takes up to {need - spare} "
                         f"samples of a class, plus {spare} left over, but {len(short)} classes of {where} have fewer "
                         f"than {need} (smallest: {int(counts[short].min())}); lower set_size or use more samples "
                         "per class")
    outside = int(counts.sum() - counts[present].topk(min(2 if polysemous else 1, len(present))).values.sum())
    wanted = n_outliers(set_size, outlier_fraction) + spare_outside
    if wanted > outside:
        raise ValueError(f"{wanted} samples outside a concept are needed per problem (outliers and negatives), but "
                         f"only {outside} lie outside the largest concept of {where}; lower outlier_fraction, "
                         "set_size or n_negatives")


def _draw(pool: Tensor, k: int, gen: torch.Generator) -> Tensor:
    return pool[torch.randperm(len(pool), generator=gen)[:k]]


def _defining_set(labels: Tensor, by_class: list[Tensor], concept: tuple[int, ...], set_size: int,
                  outlier_fraction: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    counts = members_per_class(set_size, outlier_fraction, len(concept) == 2)
    members = [_draw(by_class[c], k, gen) for c, k in zip(concept, counts)]
    outside = torch.nonzero(~torch.isin(labels, torch.tensor(concept))).flatten()
    outliers = _draw(outside, n_outliers(set_size, outlier_fraction), gen)
    index = torch.cat([*members, outliers])
    flags = torch.cat([torch.zeros(sum(counts), dtype=torch.bool), torch.ones(len(outliers), dtype=torch.bool)])
    order = torch.randperm(len(index), generator=gen)  # a search engine does not sort outliers last
    return index[order], flags[order]


def _by_class(labels: Tensor) -> list[Tensor]:
    n = int(labels.max()) + 1 if len(labels) else 0
    return [torch.nonzero(labels == c).flatten() for c in range(n)]


def concept_sets(labels: Tensor, set_size: int, outlier_fraction: float, polysemous: bool, repeats: int,
                 seed: int) -> ConceptSets:
    """Every class (every pair of classes if ``polysemous``) of ``labels``, ``repeats`` times, each with a
    defining set drawn from ``seed``."""
    check_concept_shape(labels, set_size, outlier_fraction, polysemous)
    classes = torch.unique(labels).tolist()
    concepts = list(itertools.combinations(classes, 2)) if polysemous else [(c,) for c in classes]
    gen = torch.Generator().manual_seed(seed)
    by_class = _by_class(labels)
    rows, defining, outlier = [], [], []
    for concept in concepts:
        for _ in range(repeats):
            index, flags = _defining_set(labels, by_class, concept, set_size, outlier_fraction, gen)
            rows.append(list(concept) + [-1] * (2 - len(concept)))
            defining.append(index)
            outlier.append(flags)
    return ConceptSets(torch.tensor(rows, dtype=torch.long), torch.stack(defining), torch.stack(outlier))


@dataclass(frozen=True)
class LearningProblem:
    """One training problem: the defining set (P,), positives (Q+,) and negatives (Q-,), sample indices."""

    concept: tuple[int, ...]
    defining: Tensor
    outlier: Tensor
    positives: Tensor
    negatives: Tensor


class ConceptSampler:
    """Seeded training problems on ``labels`` (see the module docstring)."""

    def __init__(self, labels: Tensor, set_size: int, outlier_fraction: float, polysemous_fraction: float,
                 n_positives: int, n_negatives: int, seed: int) -> None:
        if not 0 <= polysemous_fraction <= 1:
            raise ValueError(f"polysemous_fraction must be in [0, 1], got {polysemous_fraction}")
        if n_positives < 1 or n_negatives < 1:
            raise ValueError(f"a training problem needs positives and negatives, got {n_positives} and {n_negatives}")
        kinds = [False] * (polysemous_fraction < 1) + [True] * (polysemous_fraction > 0)
        for polysemous in kinds:  # one-class concepts take the most members of a class, two-class ones the
            check_concept_shape(labels, set_size, outlier_fraction, polysemous, spare=n_positives,  # most classes
                                spare_outside=n_negatives, where="the training split")
        self.labels = labels.cpu()
        self.set_size, self.outlier_fraction = set_size, outlier_fraction
        self.polysemous_fraction = polysemous_fraction
        self.n_positives, self.n_negatives = n_positives, n_negatives
        self.classes = torch.unique(self.labels)
        self.by_class = _by_class(self.labels)
        self.gen = torch.Generator().manual_seed(seed)

    def draw(self) -> LearningProblem:
        gen = self.gen
        two = bool(torch.rand((), generator=gen) < self.polysemous_fraction)
        picked = self.classes[torch.randperm(len(self.classes), generator=gen)[:2 if two else 1]]
        concept = tuple(int(c) for c in picked)
        defining, outlier = _defining_set(self.labels, self.by_class, concept, self.set_size,
                                          self.outlier_fraction, gen)
        inside = torch.isin(self.labels, picked)
        unused = torch.ones(len(self.labels), dtype=torch.bool)
        unused[defining] = False
        positives = _draw(torch.nonzero(inside & unused).flatten(), self.n_positives, gen)
        negatives = _draw(torch.nonzero(~inside & unused).flatten(), self.n_negatives, gen)
        return LearningProblem(concept, defining, outlier, positives, negatives)
