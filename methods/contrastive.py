"""Siamese network with a contrastive loss (Hadsell, Chopra, LeCun 2006).

The loss is pytorch-metric-learning's ``ContrastiveLoss(pos_margin=0, neg_margin=m)`` on the Euclidean
distance D between L2-normalised embeddings: D for a similar pair, [m - D]_+ for a dissimilar one, each
kind averaged over its pairs with a non-zero loss (the library's default reducer). That is the library's
(unsquared) form; the paper's is ½D² and ½[m - D]_+², which pytorch-metric-learning does not provide.

Pairs per batch (batches hold ``m_per_class`` samples of each of several classes):
- ``miner``: a ``TripletMarginMiner(type_of_triplets="semihard")``; the library turns each mined triplet
  (a, p, n) into the positive pair (a, p) and the negative pair (a, n);
- ``miner: null``: the plain random sampling of Hadsell et al.: ``pairs_per_batch`` positive and as many
  negative pairs drawn uniformly (with replacement) among the batch's pairs, from a generator seeded by
  the run's seed.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from datasets.labeled import LabeledData
from methods.base import FitReport, RunContext
from methods.bounds import Count, Steps
from methods.pair_losses import TupleLossNetwork


def random_pairs(labels: Tensor, n_pairs: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(a1, p, a2, n): ``n_pairs`` positive pairs (a1, p) and ``n_pairs`` negative pairs (a2, n) of distinct
    batch positions, uniform over the batch's positive (negative) pairs, drawn with replacement. A kind
    with no pair in the batch comes back empty."""
    y = labels.cpu()
    i, j = torch.triu_indices(len(y), len(y), offset=1)
    same = y[i] == y[j]
    out = []
    for mask in (same, ~same):
        fi, fj = i[mask], j[mask]
        if len(fi) == 0:
            out += [fi, fj]
            continue
        pick = torch.randint(len(fi), (n_pairs,), generator=gen)
        out += [fi[pick], fj[pick]]
    return tuple(t.to(labels.device) for t in out)


class ContrastiveNetwork(TupleLossNetwork):
    name = "contrastive"
    tuple_kind = "pairs"

    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: Steps, loss: nn.Module,
                 miner: nn.Module | None = None, m_per_class: Count = 8, classes_per_batch: Count = 16,
                 pairs_per_batch: Count = 64) -> None:
        super().__init__(backbone, optimizer, iterations, loss, miner, m_per_class, classes_per_batch)
        self.pairs_per_batch = pairs_per_batch
        self._gen: torch.Generator | None = None

    def prepare(self, ctx: RunContext) -> None:
        self._gen = ctx.generator(offset=29)

    def tuples(self, emb: Tensor, labels: Tensor, step: int) -> tuple[Tensor, ...]:
        if self.miner is not None:
            return self.miner(emb, labels)
        return random_pairs(labels, self.pairs_per_batch, self._gen)

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        report = super().fit(train, ctx)
        report.notes["pairs"] = "semi-hard mined triplets as pairs" if self.miner is not None else "random"
        return report
