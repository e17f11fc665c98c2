"""Reference row: no learning. The Euclidean metric on the standardised inputs ("k-NN best" in LMNN tables)."""
from __future__ import annotations

from torch import Tensor, nn

from datasets.labeled import LabeledData
from methods.base import EmbeddingLearner, FitReport, RunContext, euclidean


class RawFeatures(EmbeddingLearner):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Flatten()
        self.distance = euclidean()

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        return FitReport(notes={"trained": False})

    def embed(self, x: Tensor) -> Tensor:
        return self.encoder(x)
