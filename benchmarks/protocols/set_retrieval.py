"""Set retrieval from noisy concept sets (the Set2Model protocol): learn a concept from a small defining
set with outliers and no negatives, then rank an unannotated pool.

For every test concept (each held-out class, and with ``polysemous`` each pair of held-out classes, as one
two-sense concept), ``repeats`` defining sets of ``set_size`` test samples are drawn from the data seed
(``datasets.concepts.concept_sets``), a fraction ρ of each an outlier from the other test classes, for
every ρ in ``outlier_fractions``. The pool is every other evaluated test sample; its relevant items are
those of the concept's class(es). Each learner ranks the pool through the scorer its ``adapt`` builds
from the embedded defining set given as one class (a prototype learner: closeness to the set's mean;
Set2Model: the likelihood under the model fitted to the set), or through its own
``concept_scorer(defining_emb)`` when it has one (matching networks: the attention mass on the set, since
their class-normalised probability is 1 for every query when there is one class). Per defining set, the average precision (AP)
of that ranking; per condition, the mAP over all its defining sets ± a 95% CI over the concepts (each
concept's mean AP over its ``repeats`` sets is one value; Student t), since the sets of one concept are not
independent draws.

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
from methods.bounds import Count, FractionBelowOne


def average_precision(scores: Tensor, relevant: Tensor) -> float:
    """Non-interpolated AP of the ranking by ``scores`` (descending, ties in index order)."""
    if not bool(relevant.any()):
        raise ValueError("average precision needs at least one relevant item in the pool")
    order = torch.sort(scores, descending=True, stable=True).indices
    hits = relevant[order].double()
    precision_at = torch.cumsum(hits, 0) / torch.arange(1, len(hits) + 1, dtype=torch.float64)
    return float((precision_at * hits).sum() / hits.sum())


def per_concept(aps: Tensor, concepts: Tensor) -> Tensor:
    """The mean AP of each distinct concept (a row of ``concepts``) over its defining sets, in the sorted
    order of the concepts: the units the interval is over (the defining sets of one concept are not
    independent draws of the protocol's concepts)."""
    distinct, which = torch.unique(concepts, dim=0, return_inverse=True)
    sums = torch.zeros(len(distinct), dtype=torch.float64).index_add_(0, which, aps.double())
    return sums / torch.bincount(which, minlength=len(distinct)).double()


def concept_scores(learner: Learner, defining_emb: Tensor, pool_emb: Tensor) -> Tensor:
    """(n_pool, 1) scores of the pool for the concept of ``defining_emb``: the learner's own
    ``concept_scorer`` when it has one, else its ``adapt`` with the whole set as one class. Scores that do
    not vary over the pool cannot rank it: a clear error (a learner whose ``adapt`` normalises over
    classes, as matching networks do, needs a ``concept_scorer``); so do scores that vary by float rounding
    only (spread below 1e-5 of their size)."""
    own = getattr(learner, "concept_scorer", None)
    if own is not None:
        scorer = own(defining_emb)
    else:
        scorer = learner.adapt(defining_emb, torch.zeros(len(defining_emb), dtype=torch.long))
    scores = scorer.score(pool_emb)
    if scores.shape != (len(pool_emb), 1):
        raise ValueError(f"the scorer returned shape {tuple(scores.shape)} for a pool of {len(pool_emb)} and one "
                         f"concept; expected ({len(pool_emb)}, 1)")
    spread = float(scores.max() - scores.min()) if len(pool_emb) > 1 else 1.0
    if spread <= 1e-5 * (1.0 + float(scores.abs().max())):  # rounding noise of a constant is no ranking
        raise ValueError(f"{type(learner).__name__} gives every pool item the same score for a concept given as "
                         "one class (its adapt normalises over classes?), so it cannot rank the pool: give it a "
                         "concept_scorer(defining_emb) method, or leave it out of the set_retrieval protocol")
    return scores


def metric_name(outlier_fraction: float, polysemous: bool) -> str:
    return f"map_{'poly_' if polysemous else ''}rho{int(round(outlier_fraction * 100))}"


@dataclass
class SetRetrievalProtocol:
    set_size: Count = 20
    outlier_fractions: tuple[FractionBelowOne, ...] = (0.0, 0.25, 0.5)
    polysemous: bool = True
    repeats: Count = 10
    max_per_class: Count | None = 1000
    split: Any = field(default_factory=ClassDisjointSplit)
    name: str = "set_retrieval"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "adapt")

    def metric_names(self) -> list[str]:
        """The metrics ``evaluate`` reports, known from the settings alone (an objective is checked against them
        before any training)."""
        return [metric_name(rho, poly) for rho, poly in self.conditions()]

    def conditions(self) -> list[tuple[float, bool]]:
        kinds = (False, True) if self.polysemous else (False,)
        return [(rho, poly) for poly in kinds for rho in self.outlier_fractions]

    def check(self, split: Split) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats (defining sets per concept) must be at least 1, got {self.repeats}")
        labels = self._labels(split)
        for rho, poly in self.conditions():
            try:
                check_concept_shape(labels, self.set_size, rho, poly, where="the test split (after max_per_class)")
            except ValueError as exc:  # the protocol's settings as a run sets them
                raise ValueError(str(exc).replace("polysemous=false", "protocol.evaluator.polysemous=false")
                                 .replace("lower set_size", "lower protocol.evaluator.set_size")) from None

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
        metrics, artifacts, units = {}, {}, {}
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
                scores = concept_scores(learner, emb[defining], emb[pool])
                aps[c] = average_precision(scores[:, 0].double(), relevant[c][pool])
            units[name] = per_concept(aps, sets.concepts).numpy()
            metrics[name] = mean_ci(units[name], use_t=True)
            # indices into the test split (before max_per_class: the record keeps the split's own indices)
            artifacts[f"concepts_{name}"] = {"concepts": sets.concepts.numpy(), "defining": keep[sets.defining].numpy(),
                                            "outlier": sets.outlier.numpy(), "ap": aps.numpy()}
        return ProtocolResult(metrics=metrics, artifacts=artifacts, units=units)
