"""Triplet Siamese network with semi-hard mining (FaceNet, Schroff et al. 2015).

The loss and the miner are pytorch-metric-learning objects passed in from the yaml
(``TripletMarginLoss`` and ``TripletMarginMiner(type_of_triplets="semihard")``); batches hold
``m_per_class`` samples of each of several classes (``MPerClassSampler``). The embedding is L2-normalised.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from torch import nn

from datasets.batches import balanced_batches
from datasets.labeled import LabeledData
from methods.base import EmbeddingLearner, FitReport, RunContext
from methods.training import optimise


class TripletNetwork(EmbeddingLearner):
    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: int, loss: nn.Module, miner: nn.Module,
                 m_per_class: int = 8, classes_per_batch: int = 16) -> None:
        super().__init__()
        self.encoder = backbone
        self.optimizer = optimizer
        self.iterations = iterations
        self.loss = loss
        self.miner = miner
        self.m_per_class = m_per_class
        self.classes_per_batch = classes_per_batch
        self.distance = LpDistance(normalize_embeddings=True)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(x), dim=1)

    def check(self, train: LabeledData) -> None:
        counts = train.counts()
        if int((counts >= 2).sum()) < 2:
            raise ValueError("triplet training needs at least two classes with two or more samples each")

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.check(train)
        self.to(ctx.device).train()
        n_classes = int(train.present_classes.numel())
        classes_per_batch = min(self.classes_per_batch, n_classes)
        batches = balanced_batches(train.y, self.m_per_class, self.m_per_class * classes_per_batch,
                                   self.iterations, seed=ctx.seed)
        x, y = train.x.to(ctx.device), train.y.to(ctx.device)
        mined: list[int] = []

        def loss_at(step: int) -> torch.Tensor:
            index = batches[step].to(ctx.device)
            emb = self.embed(x[index])
            triplets = self.miner(emb, y[index])
            mined.append(int(triplets[0].numel()))
            return self.loss(emb, y[index], triplets)

        report = optimise(loss_at, self.encoder.parameters(), self.optimizer, self.iterations, ctx, "triplet")
        report.notes.update(classes_per_batch=classes_per_batch, m_per_class=self.m_per_class,
                            mean_mined_triplets=sum(mined) / max(1, len(mined)),
                            steps_without_triplets=sum(1 for m in mined if m == 0))
        return report
