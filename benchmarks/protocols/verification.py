"""Verification on held-out classes: every pair of (a seeded sample of) test items, scored by the learner's
similarity; ROC points, AUC, EER and TAR at FAR 1e-2 and 1e-3."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.protocols.sampling import cap_per_class
from benchmarks.roc import auc, eer, roc_points, tar_at_far, thin
from benchmarks.stats import single
from datasets.splits import ClassDisjointSplit, Split
from methods.base import Learner, RunContext, embed_all, similarity


def far_name(far: float) -> str:
    return f"tar_at_far_{far:.0e}".replace("-0", "-")


@dataclass
class VerificationProtocol:
    max_per_class: int | None = 100
    fars: tuple[float, ...] = (1e-2, 1e-3)
    split: Any = field(default_factory=ClassDisjointSplit)
    name: str = "verification"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "distance")

    max_samples: int = 20000  # all pairs of n samples are scored at once: n x n similarities in memory

    def check(self, split: Split) -> None:
        counts = split.test.counts()
        n = int(counts.clamp(max=self.max_per_class).sum()) if self.max_per_class else len(split.test)
        if n > self.max_samples:
            raise ValueError(f"verification would score all pairs of {n} test samples ({n * n:.1e} similarities); "
                             f"set protocol.evaluator.max_per_class so that at most {self.max_samples} remain")
        if int((split.test.counts() >= 2).sum()) < 1 or int((split.test.counts() > 0).sum()) < 2:
            raise ValueError("verification needs two test classes and a class with two samples")

    @torch.no_grad()
    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        keep = cap_per_class(split.test.y, self.max_per_class, seed=data_seed)
        emb = embed_all(learner, split.test.x[keep])
        labels = split.test.y[keep]
        i, j = torch.triu_indices(len(labels), len(labels), offset=1)
        sim = similarity(learner.distance, emb, emb)
        scores, same = sim[i, j].double().numpy(), (labels[i] == labels[j]).numpy()
        fpr, tpr, _ = roc_points(scores, same)
        metrics = {"auc": single(auc(fpr, tpr)), "eer": single(eer(fpr, tpr))}
        for far in self.fars:
            metrics[far_name(far)] = single(tar_at_far(fpr, tpr, far))
        f, t = thin(fpr, tpr)
        curve = pd.DataFrame({"fpr": f, "tpr": t})
        return ProtocolResult(metrics=metrics, curves={"roc": curve},
                              artifacts={"pairs": {"test_index": keep.numpy(),
                                                   "n_same": int(same.sum()), "n_different": int((~same).sum())}})
