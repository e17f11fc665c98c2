"""Retrieval on held-out classes: P@1, R-precision, MAP@R, Recall@1/2/4/8 (means over queries, 95% CI) and NMI."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.protocols.sampling import cap_per_class
from benchmarks.retrieval_metrics import nmi, per_query
from benchmarks.stats import mean_ci, single
from datasets.splits import ClassDisjointSplit, Split
from methods.base import Learner, RunContext, embed_all


@dataclass
class RetrievalProtocol:
    max_per_class: int | None = None
    recall_ks: tuple[int, ...] = (1, 2, 4, 8)
    split: Any = field(default_factory=ClassDisjointSplit)
    name: str = "retrieval"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "distance")

    def check(self, split: Split) -> None:
        counts = split.test.counts()
        if int((counts == 1).sum()):
            raise ValueError("retrieval needs at least two test samples of every class")

    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        keep = cap_per_class(split.test.y, self.max_per_class, seed=data_seed)
        emb = embed_all(learner, split.test.x[keep])
        labels = split.test.y[keep]
        metrics = {name: mean_ci(v) for name, v in per_query(emb, labels, learner.distance, self.recall_ks).items()}
        metrics["nmi"] = single(nmi(emb, labels, seed=data_seed))
        return ProtocolResult(metrics=metrics, artifacts={"gallery": {"test_index": keep.numpy()}})
