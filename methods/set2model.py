"""Set2Model networks (Vakhitov, Kuzmin & Lempitsky, CVIU 2018): learning discriminatively to learn
generative models.

The network maps an input to a descriptor: backbone -> linear to ``embedding_dim`` -> L2 normalisation.
A set of descriptors is mapped to a generative model (``methods.set_models``: the mean, a diagonal
Gaussian, or a diagonal Gaussian mixture fitted by EM), and a query is scored by its log-likelihood under
it (minus its distance to the mean, for the mean model). The model fit is differentiable in every
descriptor of the set, so the embedding is trained end to end through it.

Meta-training: each step takes ``problems_per_step`` learning problems from the training classes
(``datasets.concepts.ConceptSampler``): a concept (one class, or two with probability
``polysemous_fraction``), its defining set of ``set_size`` samples with a fraction ``outlier_fraction``
of outliers, ``n_positives`` further members and ``n_negatives`` samples of other classes. The model is
fitted on the defining set and the loss is the histogram loss (Ustinova & Lempitsky 2016) of the
positives' scores against the negatives' (``histogram_loss``): an estimate of the probability that a
negative outscores a positive.

At test time: ``adapt`` fits one model per class of the support set (few-shot: classify by likelihood; a
defining set given as one class: rank a pool by likelihood); retrieval, verification and k-NN use the
descriptors with the Euclidean distance of unit vectors.

Choices the paper leaves open, each said in the record's notes:
- The histogram loss needs scores in [-1, 1]; each problem's scores are mapped there by the affine map that
  sends their minimum to -1 and their maximum to 1, with the map's ends held fixed in the backward pass
  (the loss then depends only on the order and spacing of the scores, as it should for log-likelihoods,
  whose scale changes with the dimension). The histograms themselves are pytorch-metric-learning's
  ``HistogramLoss.compute_density`` (linear interpolation over ``bins`` bins).
- The default optimiser is Adam with learning rate 1e-3 (the paper's 2e-5 fine-tunes an ImageNet network;
  here the network starts from scratch, as every other learner in the suite does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import HistogramLoss
from torch import Tensor, nn

from datasets.concepts import ConceptSampler
from datasets.labeled import LabeledData
from methods.base import EmbeddingLearner, FitReport, RunContext
from methods.bounds import Count, Fraction, FractionBelowOne, Steps
from methods.training import optimise


def to_unit_interval(scores: Tensor) -> Tensor:
    """Scores mapped affinely onto [-1, 1] (minimum -> -1, maximum -> 1), the map's ends detached."""
    low, high = scores.detach().min(), scores.detach().max()
    span = (high - low).clamp_min(1e-12)
    # the top value would fall on the histogram's last node plus one: keep it just inside
    return (2 * (scores - low) / span - 1).clamp(-1.0, 1.0 - 1e-6)


def histogram_loss(positive: Tensor, negative: Tensor, bins: int = 100) -> Tensor:
    """Histogram loss of one problem: sum_r h_neg(r) * sum_{q <= r} h_pos(q), the histograms taken over
    ``bins`` bins of the scores of positives and negatives mapped together onto [-1, 1]. Higher scores
    must mean "more likely a positive"."""
    joint = to_unit_interval(torch.cat([positive, negative]))
    density = HistogramLoss(n_bins=bins).compute_density
    p_pos, p_neg = density(joint[:len(positive)]), density(joint[len(positive):])
    return (p_neg * torch.cumsum(p_pos, dim=0)).sum()


@dataclass(frozen=True)
class SetModelScorer:
    """One fitted model per class of a support set; scores (n_query, n_way) by ``set_model.score``."""

    set_model: Any
    models: Any
    n_way: int

    def score(self, query_emb: Tensor) -> Tensor:
        queries = query_emb[None].expand(self.n_way, *query_emb.shape)
        return self.set_model.score(self.models, queries).T


def fit_per_class(set_model, support_emb: Tensor, support_y: Tensor) -> SetModelScorer:
    """Fit ``set_model`` to the support samples of each label 0..N-1 (equal counts per label give one batch;
    unequal counts one fit per label)."""
    n_way = int(support_y.max()) + 1
    counts = torch.bincount(support_y, minlength=n_way)
    if int(counts.min()) == 0:
        raise ValueError(f"support labels must cover 0..{n_way - 1}; label {int(torch.argmin(counts))} has no sample")
    if bool((counts == counts[0]).all()):
        order = torch.argsort(support_y, stable=True)
        sets = support_emb[order].view(n_way, int(counts[0]), -1)
        return SetModelScorer(set_model, set_model.fit(sets), n_way)
    return _RaggedScorer([set_model.fit(support_emb[support_y == c][None]) for c in range(n_way)], set_model)


@dataclass(frozen=True)
class _RaggedScorer:
    models: list
    set_model: Any

    def score(self, query_emb: Tensor) -> Tensor:
        return torch.cat([self.set_model.score(m, query_emb[None]).T for m in self.models], dim=1)


class Set2Model(EmbeddingLearner):
    name = "set2model"
    score_episodes = None  # episodes go through ``adapt``: one model per class

    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: Steps, set_model: Any,
                 embedding_dim: Count = 128, problems_per_step: Count = 2, set_size: Count = 20,
                 outlier_fraction: FractionBelowOne = 0.25, polysemous_fraction: Fraction = 0.25,
                 n_positives: Count = 10, n_negatives: Count = 30, bins: Count = 100) -> None:
        super().__init__()
        features = getattr(backbone, "out_features", None)
        if features is None:
            raise ValueError(f"{type(backbone).__name__} does not say its out_features; the descriptor head needs it")
        if problems_per_step < 1:
            raise ValueError(f"problems_per_step must be at least 1, got {problems_per_step}")
        self.encoder = backbone
        self.head = nn.Linear(features, embedding_dim)
        self.set_model = set_model
        self.optimizer = optimizer
        self.iterations = iterations
        self.problems_per_step = problems_per_step
        self.set_size, self.outlier_fraction, self.polysemous_fraction = set_size, outlier_fraction, polysemous_fraction
        self.n_positives, self.n_negatives, self.bins = n_positives, n_negatives, bins
        self.distance = LpDistance()  # Euclidean between the unit descriptors

    def embed(self, x: Tensor) -> Tensor:
        return F.normalize(self.head(self.encoder(x)), dim=1)

    def sampler(self, labels: Tensor, seed: int) -> ConceptSampler:
        return ConceptSampler(labels, self.set_size, self.outlier_fraction, self.polysemous_fraction,
                              self.n_positives, self.n_negatives, seed=seed)

    def check(self, train: LabeledData) -> None:
        self.sampler(train.y, seed=0)  # raises a clear error when the training split cannot give the problems

    def adapt(self, support_emb: Tensor, support_y: Tensor):
        return fit_per_class(self.set_model, support_emb, support_y)

    def problem_loss(self, emb: Tensor, n_problems: int) -> Tensor:
        """Mean histogram loss of ``n_problems`` problems whose embeddings are laid out problem by problem:
        defining set, then positives, then negatives."""
        p, qp, qn = self.set_size, self.n_positives, self.n_negatives
        per = emb.view(n_problems, p + qp + qn, -1)
        model = self.set_model.fit(per[:, :p])
        positive = self.set_model.score(model, per[:, p:p + qp])
        negative = self.set_model.score(model, per[:, p + qp:])
        return torch.stack([histogram_loss(positive[b], negative[b], self.bins) for b in range(n_problems)]).mean()

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        sampler = self.sampler(train.y, seed=ctx.seed)
        self.to(ctx.device).train()
        x = train.x.to(ctx.device)
        outliers: list[float] = []

        def loss_at(step: int) -> Tensor:
            problems = [sampler.draw() for _ in range(self.problems_per_step)]
            index = torch.cat([torch.cat([q.defining, q.positives, q.negatives]) for q in problems])
            outliers.append(float(torch.stack([q.outlier.float().mean() for q in problems]).mean()))
            return self.problem_loss(self.embed(x[index.to(ctx.device)]), len(problems))

        report = optimise(loss_at, self.parameters(), self.optimizer, self.iterations, ctx, self.name)
        report.notes.update({
            "set_model": type(self.set_model).__name__, "set_size": self.set_size,
            "outlier_fraction": self.outlier_fraction, "polysemous_fraction": self.polysemous_fraction,
            "problems_per_step": self.problems_per_step, "n_positives": self.n_positives,
            "n_negatives": self.n_negatives, "bins": self.bins,
            "mean_outliers_seen": sum(outliers) / max(1, len(outliers)),
            "score_scaling": "per problem, min..max onto [-1, 1], ends detached"})
        return report
