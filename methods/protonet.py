"""Prototypical networks (Snell, Swersky, Zemel 2017).

Episodic training on the training classes: prototypes are the mean support embeddings, queries are
classified by a softmax over negative squared Euclidean distances to the prototypes.
"""
from __future__ import annotations

from typing import Callable

import torch
from pytorch_metric_learning.distances import LpDistance
from torch import nn

from datasets.episodes import check_episode_shape
from datasets.labeled import LabeledData
from methods.base import EmbeddingLearner, FitReport, RunContext, class_means, similarity
from methods.bounds import Count, Steps, TwoOrMore
from methods.episodic import fit_episodic


class PrototypicalNetwork(EmbeddingLearner):
    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: Steps,
                 n_way: TwoOrMore = 5, k_shot: Count = 5, n_query: Count = 5) -> None:
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
        return fit_episodic(self, self.encoder, self.episode_logits, train, ctx, optimizer=self.optimizer,
                            iterations=self.iterations, n_way=self.n_way, k_shot=self.k_shot,
                            n_query=self.n_query, name="protonet")
