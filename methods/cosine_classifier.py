"""Cosine classifier / Baseline++ (Chen et al. 2019; Gidaris & Komodakis 2018; Qi et al. 2018).

Stage 1 (``fit``): ordinary minibatch training of backbone + head on all training classes, with the head

    logit_c(x) = s · γ_c · cos(f(x), v_c)

where v_c is the direction of class c's weight and γ_c its norm. With ``learn_norms: true`` (Baseline++,
as the weight-normalised linear layer of the CloserLook code) γ_c is a learned parameter initialised to
‖v_c‖ at initialisation; with ``false`` γ_c = 1 (a plain cosine classifier). The scale s is ``scale``, or,
when null, 2 for at most ``scale_class_threshold`` (200) training classes and 10 above.

Minibatches: ``sampler: shuffled`` = epochs of seeded random permutations cut into ``batch_size`` batches
(the last short batch of an epoch is dropped); ``sampler: balanced`` = ``m_per_class`` samples of each of
batch_size / m_per_class classes (``MPerClassSampler``, seeded).

Stage 2 (``adapt``): the head is discarded and the backbone frozen; the weight of novel class c is
imprinted from the support set, w_c = mean of the L2-normalised support features of c, and a query is
scored by cos(f(x̂), w_c) (plain cosine, no scale: the argmax is the same). CloserLook instead trains a new
head on the support features; imprinting (Qi et al.) needs no training per episode.
"""
from __future__ import annotations

import math
from typing import Callable, Literal, get_args

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity
from torch import Tensor, nn

from datasets.batches import balanced_batches
from datasets.labeled import LabeledData
from methods.base import EmbeddingLearner, FitReport, PrototypeScorer, RunContext, class_means
from methods.bounds import Count, Positive, Steps, TwoOrMore
from methods.training import optimise

Sampler = Literal["shuffled", "balanced"]  # how minibatches are drawn (see the module docstring)


def default_scale(n_classes: int, threshold: int = 200) -> float:
    """Baseline++'s fixed scale: 2 for at most ``threshold`` classes, 10 for more."""
    return 2.0 if n_classes <= threshold else 10.0


def imprint(support_emb: Tensor, support_y: Tensor, n_way: int | None = None) -> Tensor:
    """(n_way, d) imprinted class weights: the mean of the L2-normalised support features of each class."""
    return class_means(F.normalize(support_emb, dim=1), support_y, n_way)


class CosineHead(nn.Module):
    """s · γ_c · cos(x, v_c) for every class c."""

    def __init__(self, in_features: int, n_classes: int, scale: float, learn_norms: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation range
        direction = (torch.rand(n_classes, in_features, generator=generator) * 2 - 1) * bound
        self.direction = nn.Parameter(direction)
        norms = direction.norm(dim=1)
        if learn_norms:
            self.norm = nn.Parameter(norms)
        else:
            self.register_buffer("norm", torch.ones(n_classes))
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        cos = F.normalize(x, dim=1) @ F.normalize(self.direction, dim=1).T
        return self.scale * self.norm * cos


class CosineClassifier(EmbeddingLearner):
    score_episodes = None  # its own adapt: the few-shot protocol scores its episodes one at a time

    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: Steps, batch_size: TwoOrMore = 64,
                 sampler: Sampler = "shuffled", m_per_class: Count = 4, scale: Positive | None = None,
                 scale_class_threshold: Count = 200, learn_norms: bool = True) -> None:
        super().__init__()
        if sampler not in get_args(Sampler):
            raise ValueError(f"sampler must be 'shuffled' or 'balanced', got {sampler!r}")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (batch norm in training mode), got {batch_size}")
        self.encoder = backbone
        self.optimizer = optimizer
        self.iterations = iterations
        self.batch_size = batch_size
        self.sampler = sampler
        self.m_per_class = m_per_class
        self.scale = scale
        self.scale_class_threshold = scale_class_threshold
        self.learn_norms = learn_norms
        self.head: CosineHead | None = None
        self.distance = CosineSimilarity()

    def check(self, train: LabeledData) -> None:
        if int(train.present_classes.numel()) < 2:
            raise ValueError("the cosine classifier needs at least two training classes")
        if len(train) < 2:
            raise ValueError("the cosine classifier needs at least two training samples")
        if self.sampler == "balanced" and int((train.counts() > 0).sum()) < 2:
            raise ValueError("balanced batches need at least two classes")

    def _batches(self, y: Tensor, ctx: RunContext) -> Tensor:
        """(iterations, batch) sample indices."""
        if self.sampler == "balanced":
            n_classes = int(torch.unique(y).numel())
            classes_per_batch = max(1, min(self.batch_size // self.m_per_class, n_classes))
            return balanced_batches(y, self.m_per_class, self.m_per_class * classes_per_batch,
                                    self.iterations, seed=ctx.seed)
        n = len(y)
        size = min(self.batch_size, n)
        per_epoch = n // size
        gen = ctx.generator(offset=1)
        epochs = -(-self.iterations // per_epoch)
        rows = [torch.randperm(n, generator=gen)[: per_epoch * size].view(per_epoch, size) for _ in range(epochs)]
        return torch.cat(rows)[: self.iterations] if rows else torch.empty(0, size, dtype=torch.long)

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.check(train)
        present = train.present_classes
        n_classes = int(present.numel())
        remap = torch.full((int(present.max()) + 1,), -1, dtype=torch.long)
        remap[present] = torch.arange(n_classes)
        y = remap[train.y]
        scale = float(self.scale) if self.scale is not None else default_scale(n_classes, self.scale_class_threshold)
        self.encoder.to(ctx.device)
        dim = getattr(self.encoder, "out_features", None)
        if dim is None:  # probe the backbone's width on two samples, in eval mode
            with torch.no_grad():
                self.encoder.eval()
                dim = self.encoder(train.x[:2].to(ctx.device)).shape[1]
        self.head = CosineHead(int(dim), n_classes, scale, self.learn_norms, generator=ctx.generator(offset=2))
        self.to(ctx.device).train()
        batches = self._batches(y, ctx)
        x, y = train.x.to(ctx.device), y.to(ctx.device)

        def loss_at(step: int) -> Tensor:
            index = batches[step].to(ctx.device)
            return F.cross_entropy(self.head(self.encoder(x[index])), y[index])

        report = optimise(loss_at, self.parameters(), self.optimizer, self.iterations, ctx, "cosine")
        report.notes.update(n_classes=n_classes, scale=scale, learn_norms=self.learn_norms, sampler=self.sampler,
                            batch_size=int(batches.shape[1]) if len(batches) else 0)
        return report

    def adapt(self, support_emb: Tensor, support_y: Tensor) -> PrototypeScorer:
        return PrototypeScorer(imprint(support_emb, support_y), self.distance)
