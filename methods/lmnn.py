"""Large-margin nearest neighbours (Weinberger & Saul 2009), in this project's own torch code.

Learns a linear map L (M = LᵀL) by gradient descent on L directly (no PSD projection needed):

    loss = (1/n) [ (1-μ) Σ_{i, j→i} d(i,j) + μ Σ_{i, j→i, l: y_l≠y_i} [margin + d(i,j) - d(i,l)]_+ ]

with d(a,b) = ||L x_a - L x_b||², target neighbours j→i the k nearest same-class points under the
Euclidean metric, fixed at the start. The sum is that of the paper; dividing by the number of points
only rescales the step size. Works on raw (standardised) inputs, or on the features of a frozen backbone,
on whatever device the run uses.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from datasets.labeled import LabeledData
from methods.base import FitReport, RunContext
from methods.frozen import LinearMetricOnFeatures
from methods.training import optimise


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)) squared Euclidean distances, differentiable everywhere (no sqrt)."""
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)


def target_neighbours(x: Tensor, y: Tensor, k: int) -> Tensor:
    """(n, k) indices of each point's k nearest same-class points (Euclidean, the point itself excluded)."""
    targets = torch.empty(len(y), k, dtype=torch.long, device=x.device)
    for c in torch.unique(y):
        members = torch.nonzero(y == c).flatten()
        d = squared_distances(x[members], x[members])
        d.fill_diagonal_(float("inf"))
        targets[members] = members[d.topk(k, dim=1, largest=False).indices]
    return targets


def lmnn_terms(za: Tensor, zt: Tensor, ya: Tensor, zp: Tensor, yp: Tensor, mu: float, margin: float,
               impostor_weight: float = 1.0) -> Tensor:
    """The LMNN objective of a batch of anchors, divided by the number of anchors.

    za: (B, d) mapped anchors; zt: (B, k, d) their mapped target neighbours; zp: (P, d) the mapped points
    searched for impostors (labels yp). ``impostor_weight`` rescales the push term when ``zp`` is a random
    sample of the data (n / P keeps the estimate unbiased)."""
    d_target = ((za[:, None, :] - zt) ** 2).sum(-1)  # (B, k)
    d_pool = squared_distances(za, zp)  # (B, P)
    differ = (ya[:, None] != yp[None, :]).to(za.dtype)  # candidate impostors
    hinge = torch.relu(margin + d_target[:, :, None] - d_pool[:, None, :]) * differ[:, None, :]
    return ((1 - mu) * d_target.sum() + mu * impostor_weight * hinge.sum()) / len(za)


def lmnn_loss(z: Tensor, y: Tensor, targets: Tensor, anchors: Tensor, mu: float, margin: float = 1.0) -> Tensor:
    """The exact LMNN objective over ``anchors`` (every point searched for impostors), divided by the number
    of anchors. ``z`` holds the already-mapped points L x."""
    return lmnn_terms(z[anchors], z[targets[anchors]], y[anchors], z, y, mu, margin)


class LMNN(LinearMetricOnFeatures):
    def __init__(self, optimizer: Callable, iterations: int, k: int = 3, mu: float = 0.5, margin: float = 1.0,
                 out_features: int | None = None, anchors_per_step: int = 2048, max_triples: int = 30_000_000,
                 impostor_pool: int = 4096,
                 features: nn.Module | None = None) -> None:
        super().__init__(features)
        self.optimizer = optimizer
        self.iterations = iterations
        self.k, self.mu, self.margin = k, mu, margin
        self.out_features = out_features
        self.anchors_per_step = anchors_per_step
        self.max_triples = max_triples
        self.impostor_pool = impostor_pool

    def check(self, train: LabeledData) -> None:
        counts = train.counts()
        small = [train.classes[c] for c in torch.nonzero((counts > 0) & (counts <= self.k)).flatten().tolist()]
        if small:
            raise ValueError(
                f"LMNN with k={self.k} target neighbours needs more than {self.k} samples in every training class; "
                f"classes {small[:5]} have fewer. Lower method.learner.k."
            )

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.check(train)
        self.to(ctx.device)
        feats = self.frozen_train_features(train.x).to(ctx.device)
        y = train.y.to(ctx.device)
        d = feats.shape[1]
        out = self.out_features or d
        self.L = nn.Parameter(torch.eye(out, d, device=ctx.device))
        targets = target_neighbours(feats, y, self.k)
        n = len(y)
        gen = ctx.generator(offset=17)
        if n <= self.impostor_pool:
            # exact: every point is searched for impostors; anchors x k x n hinge terms stay under max_triples
            per_step = max(1, min(self.anchors_per_step, self.max_triples // (self.k * n)))
            pool_size, mode = n, "exact"
        else:
            # large data: each step searches a fresh random pool of points for impostors, so the cost of a
            # step no longer grows with n (mapping all n points through L each step is what dominates)
            pool_size, mode = self.impostor_pool, "sampled impostors"
            per_step = max(1, min(self.anchors_per_step, pool_size // 8, self.max_triples // (self.k * pool_size)))

        def loss_at(step: int) -> Tensor:
            if n <= per_step:
                return lmnn_loss(feats @ self.L.T, y, targets, torch.arange(n, device=ctx.device), self.mu, self.margin)
            anchors = torch.randperm(n, generator=gen)[:per_step].to(ctx.device)
            if pool_size == n:
                return lmnn_loss(feats @ self.L.T, y, targets, anchors, self.mu, self.margin)
            pool = torch.randperm(n, generator=gen)[:pool_size].to(ctx.device)
            return lmnn_terms(feats[anchors] @ self.L.T, feats[targets[anchors]] @ self.L.T, y[anchors],
                              feats[pool] @ self.L.T, y[pool], self.mu, self.margin, impostor_weight=n / pool_size)

        report = optimise(loss_at, [self.L], self.optimizer, self.iterations, ctx, "lmnn")
        report.notes.update(k=self.k, mu=self.mu, input_features=d, out_features=out, anchors_per_step=min(n, per_step),
                            impostor_search=mode, impostor_pool=pool_size)
        return report

