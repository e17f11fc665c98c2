"""The learner interface shared by every method.

A learner is fitted once on the training split, then serves every protocol through three calls:

- ``embed(x)``: inputs -> embeddings (n, d), the space its ``distance`` works in;
- ``distance``: a pytorch-metric-learning distance used for retrieval, verification and k-NN;
- ``adapt(support_emb, support_y)``: a new ``Scorer`` for one episode, built from *embedded* support
  samples (labels 0..N-1). Working on embeddings lets a protocol embed each test sample once and reuse
  it over hundreds of episodes; adaptation that must see raw inputs is out of scope for this interface.

``adapt`` returns a fresh object and leaves the learner untouched, so there is no required call order.
Learners never compute evaluation metrics: protocols do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from pytorch_metric_learning.distances import BaseDistance, LpDistance
from torch import Tensor, nn

from datasets.labeled import LabeledData


PRECISIONS = ("fp32", "bf16")


@dataclass
class RunContext:
    """What a learner may know about the run: where to compute, which seed, whether to show progress."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    progress: bool = True
    precision: str = "fp32"  # or "bf16": training forward passes under torch.autocast in bfloat16

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not one of {', '.join(PRECISIONS)}: fp32 trains in "
                             "float32, bf16 under torch.autocast in bfloat16 (mixed precision)")

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)

    def autocast(self):
        """The context a training forward pass runs in: bfloat16 autocast on the run's device when
        ``precision`` is bf16 (no loss scaling is needed: bf16 has float32's range), else a no-op."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")


@dataclass
class FitReport:
    """What training did: steps taken, the loss curve (sampled), and free-form notes for the record."""

    iterations: int = 0
    final_loss: float | None = None
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"iterations": self.iterations, "final_loss": self.final_loss,
                "loss_curve": [list(p) for p in self.loss_curve], "notes": self.notes}


@runtime_checkable
class Scorer(Protocol):
    def score(self, query_emb: Tensor) -> Tensor:
        """(n_query, n_way) scores, higher = more likely."""


@runtime_checkable
class Learner(Protocol):
    distance: BaseDistance

    def check(self, train: LabeledData) -> None:
        """Raise a clear error if training on ``train`` cannot work (cheap; called before any fit)."""

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport: ...

    def embed(self, x: Tensor) -> Tensor: ...

    def adapt(self, support_emb: Tensor, support_y: Tensor) -> Scorer: ...


def similarity(distance: BaseDistance, query: Tensor, reference: Tensor) -> Tensor:
    """(n_query, n_ref) similarities, higher = closer, whatever the direction of ``distance``."""
    mat = distance(query, reference)
    return mat if distance.is_inverted else -mat


def class_means(emb: Tensor, labels: Tensor, n_way: int | None = None) -> Tensor:
    """(n_way, d) mean embedding of each label 0..n_way-1."""
    n_way = int(labels.max()) + 1 if n_way is None else n_way
    sums = torch.zeros(n_way, emb.shape[1], dtype=emb.dtype, device=emb.device).index_add_(0, labels, emb)
    counts = torch.bincount(labels, minlength=n_way).clamp_min(1).to(emb.dtype)
    return sums / counts[:, None]


@dataclass(frozen=True)
class PrototypeScorer:
    """Scores queries by closeness to class prototypes (the mean support embedding of each class)."""

    prototypes: Tensor
    distance: BaseDistance

    def score(self, query_emb: Tensor) -> Tensor:
        return similarity(self.distance, query_emb, self.prototypes)


def euclidean() -> LpDistance:
    """Plain Euclidean distance, without the unit-norm projection pytorch-metric-learning applies by default."""
    return LpDistance(normalize_embeddings=False)


class EmbeddingLearner(nn.Module):
    """Base for learners whose test-time behaviour is an embedding plus a distance.

    Subclasses set ``self.encoder`` and ``self.distance`` and implement ``fit``; episodes are scored by
    the nearest class prototype under the learner's own distance (1-NN when there is one shot).
    """

    encoder: nn.Module
    distance: BaseDistance

    def check(self, train: LabeledData) -> None:
        return None

    def embed(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def adapt(self, support_emb: Tensor, support_y: Tensor) -> Scorer:
        return PrototypeScorer(class_means(support_emb, support_y), self.distance)

    def score_episodes(self, support_emb: Tensor, support_y: Tensor, query_emb: Tensor) -> Tensor:
        """Many episodes at once: (E, S, d) supports sharing the labels ``support_y`` (S,) and (E, Q, d)
        queries give (E, Q, n_way) scores, the same as ``adapt(support_emb[e], support_y).score(query_emb[e])``
        for each episode e. The few-shot protocol uses it when a learner has it; a subclass that changes
        ``adapt`` sets ``score_episodes = None`` (or writes its own)."""
        n_ep, n_query, dim = query_emb.shape
        n_way = int(support_y.max()) + 1
        onehot = torch.nn.functional.one_hot(support_y, n_way).to(support_emb.dtype)  # (S, n_way)
        sums = torch.einsum("esd,sn->end", support_emb, onehot)
        prototypes = sums / onehot.sum(0).clamp_min(1)[None, :, None]
        # one distance matrix over all queries and all prototypes of the chunk, then each episode's block
        sim = similarity(self.distance, query_emb.reshape(-1, dim), prototypes.reshape(-1, dim))
        sim = sim.view(n_ep, n_query, n_ep, n_way)
        episode = torch.arange(n_ep, device=sim.device)
        return sim[episode, :, episode, :]

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")


@torch.no_grad()
def embed_all(learner: Learner, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Embed ``x`` in batches on the learner's device, in eval mode; returns a CPU tensor."""
    module = learner if isinstance(learner, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    device = getattr(learner, "device", torch.device("cpu"))
    try:
        parts = [learner.embed(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        if module is not None:
            module.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0)


class LearnerInterfaceError(TypeError):
    """An object built as a learner lacks what every run calls (a learner written outside this package)."""


def check_interface(learner: object) -> None:
    """Raise ``LearnerInterfaceError`` before any training when ``learner`` lacks what every run calls:
    ``check`` and ``fit``, and, for an ``EmbeddingLearner``, the ``distance`` its ``adapt`` scores with
    (protocols check what they call themselves: ``embed``, ``adapt``, ``distance``, ...)."""
    missing = [name for name in ("check", "fit") if not callable(getattr(learner, name, None))]
    if isinstance(learner, EmbeddingLearner) and getattr(learner, "distance", None) is None:
        missing.append("distance")
    if missing:
        raise LearnerInterfaceError(
            f"{type(learner).__name__} cannot be run as a learner: it has no {', '.join(missing)}. A learner has "
            "check(train), fit(train, ctx) returning a methods.base.FitReport, embed(x) and a distance (a "
            "pytorch-metric-learning distance); an EmbeddingLearner subclass gets check, embed and adapt, and "
            "sets self.encoder and self.distance in its __init__ (methods/base.py: Learner, EmbeddingLearner)")


def checked_report(learner: object, report: object) -> FitReport:
    """``report`` when ``fit`` returned a FitReport; else a LearnerInterfaceError naming what it returned."""
    if not isinstance(report, FitReport):
        raise LearnerInterfaceError(
            f"{type(learner).__name__}.fit returned {type(report).__name__}, not a methods.base.FitReport: end fit "
            "with e.g. `return FitReport(iterations=steps, final_loss=last_loss)` (FitReport() for a learner that "
            "does not train)")
    return report


# A learner's check that finds too few classes on the training side says how to get more there.
MORE_TRAINING_CLASSES = ("keep more classes for training (a smaller protocol.evaluator.split.test_classes, where "
                         "the split holds classes out by a share) or use data with more classes")
