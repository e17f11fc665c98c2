"""Set retrieval from noisy concept sets (the Set2Model protocol): learn a concept from a small defining
set with outliers and no negatives, then rank an unannotated pool.

For every test concept (each held-out class, and with ``polysemous`` each pair of held-out classes, as one
two-sense concept), ``repeats`` defining sets of ``set_size`` test samples are drawn from the data seed
(``datasets.concepts.concept_sets``), a fraction ρ of each an outlier from the other test classes, for
every ρ in ``outlier_fractions``. The pool is every other evaluated test sample; its relevant items are
those of the concept's class(es). Each learner ranks the pool through the scorer its ``adapt`` builds
from the embedded defining set given as one class (a prototype learner: closeness to the set's mean;
Set2Model: the likelihood under the model fitted to the set). Per defining set, the average precision (AP)
of that ranking; per condition, mAP ± 95% CI over its defining sets (Student t).

Metrics: ``map_rho<ρ in %>`` for one-class concepts and ``map_poly_rho<ρ in %>`` for two-class ones,
e.g. ``map_rho25``, ``map_poly_rho0``. ``max_per_class`` caps the evaluated test samples of each class
(seeded), so the pool stays a few thousand images. The defining sets are kept in the run's artifacts.

AP: the pool sorted by score, highest first (equal scores in pool order); AP = mean over the relevant
items of the precision at the rank of each, the non-interpolated definition (scikit-learn's
``average_precision_score`` on tie-free scores, ``tests/test_set_retrieval.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.protocols.sampling import cap_per_class
from benchmarks.stats import mean_ci
from datasets.concepts import check_concept_shape, concept_sets
from datasets.image_files import take
from datasets.splits import ClassDisjointSplit, Split
from methods.base import Learner, RunContext, embed_all


def average_precision(scores: Tensor, relevant: Tensor) -> float:
    """Non-interpolated AP of the ranking by ``scores`` (descending, ties in index order)."""
    if not bool(relevant.any()):
        raise ValueError("average precision needs at least one relevant item in the pool")
    order = torch.sort(scores, descending=True, stable=True).indices
    hits = relevant[order].double()
    precision_at = torch.cumsum(hits, 0) / torch.arange(1, len(hits) + 1, dtype=torch.float64)
    return float((precision_at * hits).sum() / hits.sum())


def metric_name(outlier_fraction: float, polysemous: bool) -> str:
    return f"map_{'poly_' if polysemous else ''}rho{int(round(outlier_fraction * 100))}"


@dataclass
class SetRetrievalProtocol:
    set_size: int = 20
    outlier_fractions: tuple[float, ...] = (0.0, 0.25, 0.5)
    polysemous: bool = True
    repeats: int = 10
    max_per_class: int | None = 1000
    split: Any = field(default_factory=ClassDisjointSplit)
    name: str = "set_retrieval"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "adapt")

    def conditions(self) -> list[tuple[float, bool]]:
        kinds = (False, True) if self.polysemous else (False,)
        return [(rho, poly) for poly in kinds for rho in self.outlier_fractions]

    def check(self, split: Split) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats (defining sets per concept) must be at least 1, got {self.repeats}")
        labels = self._labels(split)
        for rho, poly in self.conditions():
            check_concept_shape(labels, self.set_size, rho, poly, where="the test split (after max_per_class)")

    def _keep(self, split: Split, seed: int) -> Tensor:
        return cap_per_class(split.test.y, self.max_per_class, seed=seed)

    def _labels(self, split: Split) -> Tensor:
        # the counts per class after the cap do not depend on its seed
        return split.test.y[self._keep(split, seed=0)]

    def concept_seed(self, data_seed: int, rho: float, poly: bool) -> int:
        return data_seed * 7919 + int(round(rho * 1000)) * 13 + (1 if poly else 0)

    @torch.no_grad()
    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        keep = self._keep(split, seed=data_seed)
        labels = split.test.y[keep]
        emb = embed_all(learner, take(split.test.x, keep))
        metrics, artifacts = {}, {}
        for rho, poly in self.conditions():
            sets = concept_sets(labels, self.set_size, rho, poly, self.repeats, seed=self.concept_seed(data_seed, rho, poly))
            relevant = sets.relevant(labels)
            name = metric_name(rho, poly)
            aps = torch.empty(len(sets), dtype=torch.float64)
            bar = tqdm(range(len(sets)), desc=name, disable=not ctx.progress, leave=False, mininterval=1.0)
            for c in bar:
                defining = sets.defining[c]
                pool = torch.ones(len(labels), dtype=torch.bool)
                pool[defining] = False
                scorer = learner.adapt(emb[defining], torch.zeros(len(defining), dtype=torch.long))
                scores = scorer.score(emb[pool])
                if scores.shape != (int(pool.sum()), 1):
                    raise ValueError(f"the scorer returned shape {tuple(scores.shape)} for a pool of "
                                     f"{int(pool.sum())} and one concept; expected ({int(pool.sum())}, 1)")
                aps[c] = average_precision(scores[:, 0].double(), relevant[c][pool])
            metrics[name] = mean_ci(aps.numpy())
            # indices into the test split (before max_per_class: the record keeps the split's own indices)
            artifacts[f"concepts_{name}"] = {"concepts": sets.concepts.numpy(), "defining": keep[sets.defining].numpy(),
                                            "outlier": sets.outlier.numpy(), "ap": aps.numpy()}
        return ProtocolResult(metrics=metrics, artifacts=artifacts)
