"""The training loop shared by the Siamese learners trained with a pytorch-metric-learning tuple loss
(triplet, contrastive): class-balanced batches (``MPerClassSampler``), a backbone with an L2-normalised
embedding, tuples per batch from a miner (or from the subclass's own sampler), and ``optimise``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from torch import Tensor, nn

from datasets.batches import balanced_batches
from datasets.labeled import LabeledData
from methods.base import MORE_TRAINING_CLASSES, EmbeddingLearner, FitReport, RunContext
from methods.bounds import Count, Steps
from methods.training import optimise


class TupleLossNetwork(EmbeddingLearner):
    """Subclasses set ``name`` and ``tuple_kind`` (the word used in the notes: "triplets", "pairs") and may
    override ``tuples`` (default: the miner's output on the batch)."""

    name = "tuple"
    tuple_kind = "tuples"

    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: Steps, loss: nn.Module,
                 miner: nn.Module | None, m_per_class: Count = 8, classes_per_batch: Count = 16) -> None:
        super().__init__()
        self.encoder = backbone
        self.optimizer = optimizer
        self.iterations = iterations
        self.loss = loss
        self.miner = miner
        self.m_per_class = m_per_class
        self.classes_per_batch = classes_per_batch
        self.distance = LpDistance(normalize_embeddings=True)

    def embed(self, x: Tensor) -> Tensor:
        return F.normalize(self.encoder(x), dim=1)

    def check(self, train: LabeledData) -> None:
        counts = train.counts()
        if int((counts >= 2).sum()) < 2:
            raise ValueError(f"{self.name} training needs at least two classes with two or more samples each; the "
                             f"training split has {int((counts >= 2).sum())}: {MORE_TRAINING_CLASSES}")

    def tuples(self, emb: Tensor, labels: Tensor, step: int) -> tuple[Tensor, ...]:
        """The indices tuple passed to the loss for one batch."""
        return self.miner(emb, labels)

    def prepare(self, ctx: RunContext) -> None:
        """Called once before the loop (e.g. to seed a pair sampler)."""

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.check(train)
        self.to(ctx.device).train()
        self.prepare(ctx)
        n_classes = int(train.present_classes.numel())
        classes_per_batch = min(self.classes_per_batch, n_classes)
        batches = balanced_batches(train.y, self.m_per_class, self.m_per_class * classes_per_batch,
                                   self.iterations, seed=ctx.seed)
        x, y = train.x.to(ctx.device), train.y.to(ctx.device)
        mined: list[int] = []

        def loss_at(step: int) -> Tensor:
            index = batches[step].to(ctx.device)
            emb = self.embed(x[index])
            indices = self.tuples(emb, y[index], step)
            mined.append(int(indices[0].numel()))
            return self.loss(emb, y[index], indices)

        report = optimise(loss_at, self.encoder.parameters(), self.optimizer, self.iterations, ctx, self.name)
        report.notes.update({"classes_per_batch": classes_per_batch, "m_per_class": self.m_per_class,
                             f"mean_mined_{self.tuple_kind}": sum(mined) / max(1, len(mined)),
                             f"steps_without_{self.tuple_kind}": sum(1 for m in mined if m == 0)})
        return report
