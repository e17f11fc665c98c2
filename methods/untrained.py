"""Reference row: the backbone at its random initialisation (seeded), with no training at all.

It tells how much of a learner's score the architecture alone gives: on class-disjoint Fashion-MNIST a
random Conv-4 already retrieves well.
"""
from __future__ import annotations

from torch import nn

from datasets.labeled import LabeledData
from methods.base import EmbeddingLearner, FitReport, RunContext, euclidean


class UntrainedBackbone(EmbeddingLearner):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.encoder = backbone
        self.distance = euclidean()

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.to(ctx.device)
        return FitReport(notes={"trained": False})
