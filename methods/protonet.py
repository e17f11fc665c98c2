"""Prototypical networks (Snell, Swersky, Zemel 2017).

Episodic training on the training classes: prototypes are the mean support embeddings, queries are
classified by a softmax over negative squared Euclidean distances to the prototypes.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from torch import nn

from datasets.episodes import check_episode_shape, sample_episodes
from datasets.labeled import LabeledData
from methods.base import EmbeddingLearner, FitReport, RunContext, class_means, similarity
from methods.training import optimise


class PrototypicalNetwork(EmbeddingLearner):
    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: int,
                 n_way: int = 5, k_shot: int = 5, n_query: int = 5) -> None:
        super().__init__()
        self.encoder = backbone
        self.optimizer = optimizer
        self.iterations = iterations
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.distance = LpDistance(normalize_embeddings=False, power=2)  # squared Euclidean

    def check(self, train: LabeledData) -> None:
        check_episode_shape(train.y, self.n_way, self.k_shot, self.n_query)

    def episode_logits(self, support_emb: torch.Tensor, support_y: torch.Tensor, query_emb: torch.Tensor) -> torch.Tensor:
        return similarity(self.distance, query_emb, class_means(support_emb, support_y))

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.check(train)
        self.to(ctx.device).train()
        episodes = sample_episodes(train.y, self.n_way, self.k_shot, self.n_query, self.iterations, seed=ctx.seed)
        x = train.x.to(ctx.device)
        support_y = torch.arange(self.n_way, device=ctx.device).repeat_interleave(self.k_shot)
        query_y = torch.arange(self.n_way, device=ctx.device).repeat_interleave(self.n_query)
        n_support = self.n_way * self.k_shot

        def loss_at(step: int) -> torch.Tensor:
            index = torch.cat([episodes.support[step].flatten(), episodes.query[step].flatten()]).to(ctx.device)
            emb = self.encoder(x[index])
            logits = self.episode_logits(emb[:n_support], support_y, emb[n_support:])
            return F.cross_entropy(logits, query_y)

        report = optimise(loss_at, self.parameters(), self.optimizer, self.iterations, ctx, "protonet")
        report.notes.update(train_way=self.n_way, train_shot=self.k_shot, train_query=self.n_query)
        return report
