"""k-NN classification error on held-out samples of the training classes (the LMNN / MMC protocol):
the learner is fitted on part of every class, and each held-out sample takes the majority label of its k
nearest training samples under the learner's distance (ties go to the smallest label, as in scikit-learn)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.stats import Metric
from datasets.splits import Split, WithinClassSplit
from methods.base import Learner, RunContext, embed_all, similarity
from methods.bounds import Count


def knn_predict(query: torch.Tensor, reference: torch.Tensor, reference_y: torch.Tensor, distance, k: int,
                chunk: int = 2048) -> torch.Tensor:
    n_classes = int(reference_y.max()) + 1
    preds = []
    for start in range(0, len(query), chunk):
        idx = similarity(distance, query[start:start + chunk], reference).topk(k, dim=1).indices
        votes = torch.zeros(idx.shape[0], n_classes).scatter_add_(1, reference_y[idx], torch.ones(idx.shape))
        preds.append(votes.argmax(1))  # first maximum = smallest label among ties
    return torch.cat(preds)


@dataclass
class KNNProtocol:
    k: Count = 3
    split: Any = field(default_factory=WithinClassSplit)
    name: str = "knn"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "distance")

    def metric_names(self) -> list[str]:
        """The metrics ``evaluate`` reports, known from the settings alone (an objective is checked against them
        before any training)."""
        return ["knn_error"]

    def check(self, split: Split) -> None:
        if len(split.train) < self.k:
            raise ValueError(f"k-NN with k={self.k} needs at least {self.k} training samples")

    @torch.no_grad()
    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        ref = embed_all(learner, split.train.x)
        query = embed_all(learner, split.test.x)
        pred = knn_predict(query, ref, split.train.y, learner.distance, self.k)
        wrong = (pred != split.test.y).double().numpy()
        p, n = float(wrong.mean()), len(wrong)
        ci = float(1.959964 * np.sqrt(max(p * (1 - p), 0.0) / n))  # normal approximation of a binomial
        return ProtocolResult(metrics={"knn_error": Metric(p, ci, n)}, units={"knn_error": wrong})
