"""Verification on held-out classes: every pair of (a seeded sample of) test items, scored by the learner's
similarity; ROC points, AUC, EER and TAR at FAR 1e-2 and 1e-3.

Each number comes with a 95% interval from a bootstrap over the held-out classes (subjects): the result is
a claim about new classes, so the classes are the unit resampled (``benchmarks.roc.class_bootstrap``). The
half-width is 1.96 x the bootstrap standard deviation; with few held-out classes (5 on digits) it is rough.
``bootstrap=0`` turns it off."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.protocols.sampling import cap_per_class
from benchmarks.roc import auc, class_bootstrap, eer, roc_points, tar_at_far, thin
from benchmarks.stats import Metric, single
from datasets.image_files import take
from datasets.splits import ClassDisjointSplit, Split
from methods.base import Learner, RunContext, embed_all, similarity
from methods.bounds import Count, CountOrZero, PositiveFraction


def _at_least(rate: float) -> str:
    """The smallest of 1e-k, 2e-k, 5e-k at or above ``rate``, as a user would type it."""
    for exponent in range(-9, 1):
        for mantissa in (1, 2, 5):
            if mantissa * 10.0 ** exponent >= rate:
                return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return "1"


def far_name(far: float) -> str:
    return f"tar_at_far_{far:.0e}".replace("-0", "-")


@dataclass
class VerificationProtocol:
    max_per_class: Count | None = 100
    fars: tuple[PositiveFraction, ...] = (1e-2, 1e-3)
    split: Any = field(default_factory=ClassDisjointSplit)
    bootstrap: CountOrZero = 200  # replicates of the bootstrap over held-out classes; 0: no interval
    name: str = "verification"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "distance")

    def metric_names(self) -> list[str]:
        """The metrics ``evaluate`` reports, known from the settings alone (an objective is checked against them
        before any training)."""
        return ["auc", "eer", *(far_name(far) for far in self.fars)]

    max_samples: Count = 20000  # all pairs of n samples are scored at once: n x n similarities in memory

    def check(self, split: Split) -> None:
        counts = split.test.counts()
        n = int(counts.clamp(max=self.max_per_class).sum()) if self.max_per_class else len(split.test)
        if n > self.max_samples:
            raise ValueError(f"verification would score all pairs of {n} test samples ({n * n:.1e} similarities); "
                             f"set protocol.evaluator.max_per_class so that at most {self.max_samples} remain")
        if int((split.test.counts() >= 2).sum()) < 1 or int((split.test.counts() > 0).sum()) < 2:
            raise ValueError("verification needs two test classes and a class with two samples")
        kept = counts.clamp(max=self.max_per_class) if self.max_per_class else counts
        different = (int(kept.sum()) ** 2 - int((kept ** 2).sum())) // 2  # pairs of samples of two classes
        unresolved = [far for far in self.fars if different * far < 1]
        if unresolved:  # not one false accept can be told: the TAR would be the TAR at a false-accept rate of 0
            smallest = min(unresolved)
            raise ValueError(
                f"TAR at FAR {smallest:g} needs at least {round(1 / smallest)} different-class pairs to tell one false "
                f"accept, but the {int(kept.sum())} test samples give {different}: set protocol.evaluator.fars to "
                f"rates of at least 1/{different} (e.g. protocol.evaluator.fars=[{_at_least(1 / different)}]), or "
                "hold out more test samples")

    @torch.no_grad()
    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        keep = cap_per_class(split.test.y, self.max_per_class, seed=data_seed)
        emb = embed_all(learner, take(split.test.x, keep))  # lazy images: decoded batch by batch
        labels = split.test.y[keep]
        i, j = torch.triu_indices(len(labels), len(labels), offset=1)
        sim = similarity(learner.distance, emb, emb)
        scores, same = sim[i, j].double().numpy(), (labels[i] == labels[j]).numpy()
        fpr, tpr, _ = roc_points(scores, same)
        statistics = {"auc": auc, "eer": eer}
        for far in self.fars:
            statistics[far_name(far)] = lambda f, t, far=far: tar_at_far(f, t, far)
        n_classes = int(torch.unique(labels).numel())
        replicates = (class_bootstrap(scores, labels[i].numpy(), labels[j].numpy(), statistics,
                                      n_boot=self.bootstrap, seed=data_seed) if self.bootstrap else {})
        metrics = {}
        for name, fn in statistics.items():
            value, reps = fn(fpr, tpr), replicates.get(name)
            metrics[name] = (Metric(value, float(1.96 * reps.std(ddof=1)), n_classes)
                             if reps is not None and len(reps) >= 2 else single(value))
        f, t = thin(fpr, tpr)
        curve = pd.DataFrame({"fpr": f, "tpr": t})
        return ProtocolResult(metrics=metrics, curves={"roc": curve}, replicates=replicates,
                              artifacts={"pairs": {"test_index": keep.numpy(),
                                                   "n_same": int(same.sum()), "n_different": int((~same).sum())}})
