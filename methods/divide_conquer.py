"""Divide and conquer the embedding space (Sanakoyeu et al., CVPR 2019; learnable masks: TPAMI 2021).

One embedding e = head(backbone(x)) of size d is shared by K learners, each with its own copy of the loss.
Training (``iterations`` steps in all, the same budget as every other learner):

1. Main stage, the first (1 - ``final_stage``) of the steps. The training data is clustered into as many
   clusters as there are active learners, by k-means on the L2-normalised backbone features of the current
   network; the clusters are re-computed every ``recluster_every`` epochs (an epoch: as many steps as it
   takes batches of this size to cover the training set once) and matched to the previous clusters by
   the Hungarian assignment on their overlap (``match_clusters``), so learner k keeps (most of) the data it
   had. Steps go round-robin over the learners: learner k takes a class-balanced batch from its cluster
   only, and its loss sees only its view of the embedding (``methods.subspaces``: a fixed slice, or a
   learnable mask plus an orthogonality penalty). With ``hierarchical: true`` (TPAMI) the main stage is cut
   into levels with 1, 2, 4, ... K learners; at each new level every cluster is split in two by k-means
   inside it (children 2k and 2k + 1 of learner k), and every learner's view and loss are inherited by
   both of its children.
2. Final stage, the last ``final_stage`` of the steps: the full embedding, L2-normalised, trained on
   class-balanced batches of all the data with a fresh copy of the loss. At test time the learner is that
   full normalised embedding with the Euclidean distance.

With K = 1 there is one cluster (all the data) and one view (the whole normalised embedding), so the main
and final stages are the same training; they are merged into one stage and the learner is exactly the
plain network trained with the same loss, miner, batches and seed (``tests/test_divide_conquer.py``).

Choices where the papers leave room, each said in the record's notes:
- Clusters are computed on the backbone's output (before the embedding head), in eval mode, on the
  inputs without training augmentation (``datasets.image_files.without_augmentation``).
- A cluster in which fewer than two classes have two or more samples cannot give a loss with positives
  and negatives; its learner then takes batches from all the data until the next re-clustering
  (counted as ``degenerate_clusters``).
- Within a cluster, batches hold ``m_per_class`` samples of ``min(classes_per_batch, classes there)``
  classes (pytorch-metric-learning's ``MPerClassSampler``); classes with fewer samples are drawn with
  replacement by the sampler.
- The default loss is pytorch-metric-learning's ``MarginLoss`` (alpha = 0.2, beta = 1.2) with its
  ``DistanceWeightedMiner``; any of its losses and miners can be named in the yaml.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from torch import Tensor, nn

from datasets.batches import balanced_batches
from datasets.image_files import without_augmentation
from datasets.labeled import LabeledData
from methods.base import MORE_TRAINING_CLASSES, EmbeddingLearner, FitReport, RunContext
from methods.bounds import Count, FractionBelowOne, Positive, Steps
from methods.training import optimise


@dataclass(frozen=True)
class Phase:
    """Steps [start, stop) with a fixed assignment of the data to ``n_active`` learners. ``final``: the
    all-data stage on the full embedding. ``level_start``: the first phase of a level with more learners
    than the previous one (clusters are split, not re-clustered)."""

    start: int
    stop: int
    n_active: int
    final: bool = False
    level_start: bool = False


def schedule(iterations: int, n_learners: int, hierarchical: bool, final_stage: float,
             period: int) -> list[Phase]:
    """The phases of a run of ``iterations`` steps. ``period``: steps between re-clusterings."""
    final_steps = 0 if n_learners == 1 else int(round(final_stage * iterations))
    main_steps = iterations - final_steps
    levels = [2 ** i for i in range(int(math.log2(n_learners)) + 1)] if hierarchical else [n_learners]
    phases: list[Phase] = []
    start = 0
    for i, n_active in enumerate(levels):
        stop = main_steps if i == len(levels) - 1 else start + main_steps // len(levels)
        first = True
        while start < stop:
            # one cluster needs no re-clustering: a single phase covers the level
            end = stop if n_active == 1 else min(stop, start + period)
            phases.append(Phase(start, end, n_active, level_start=first and bool(phases)))
            start, first = end, False
    if final_steps:
        phases.append(Phase(main_steps, iterations, 1, final=True))
    return phases


def match_clusters(previous: Tensor, new: Tensor, n_clusters: int) -> Tensor:
    """Relabel ``new`` cluster ids so that they overlap ``previous`` the most (Hungarian assignment on the
    (previous, new) contingency table): new cluster c becomes ``perm[c]``. Returns the relabelled ids."""
    table = np.zeros((n_clusters, n_clusters), dtype=np.int64)
    np.add.at(table, (previous.numpy(), new.numpy()), 1)
    old_ids, new_ids = linear_sum_assignment(-table)
    perm = torch.empty(n_clusters, dtype=torch.long)
    perm[torch.as_tensor(new_ids)] = torch.as_tensor(old_ids)
    return perm[new]


def kmeans(features: Tensor, n_clusters: int, seed: int) -> Tensor:
    """k-means cluster ids (int64) of the rows of ``features``; fewer rows than clusters: one row each."""
    if len(features) <= n_clusters:
        return torch.arange(len(features), dtype=torch.long)
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed)
    return torch.as_tensor(km.fit_predict(features.double().numpy()), dtype=torch.long)


def split_clusters(assignment: Tensor, features: Tensor, n_active: int, seed: int) -> Tensor:
    """Each cluster k of ``n_active`` split in two by k-means inside it: children 2k and 2k + 1."""
    out = torch.empty_like(assignment)
    for k in range(n_active):
        members = torch.nonzero(assignment == k).flatten()
        halves = kmeans(features[members], 2, seed + k) if len(members) >= 2 else torch.zeros(len(members),
                                                                                              dtype=torch.long)
        out[members] = 2 * k + halves
    return out


class DivideAndConquer(EmbeddingLearner):
    name = "divide_conquer"

    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: Steps, loss: nn.Module,
                 miner: nn.Module | None, subspaces: nn.Module, n_learners: Count = 4,
                 embedding_dim: Count | None = 128, recluster_every: Positive = 2.0,
                 final_stage: FractionBelowOne = 0.2,
                 hierarchical: bool = False, m_per_class: Count = 8, classes_per_batch: Count = 16) -> None:
        super().__init__()
        if n_learners < 1:
            raise ValueError(f"n_learners must be at least 1, got {n_learners}")
        if hierarchical and n_learners & (n_learners - 1):
            raise ValueError(f"hierarchical splitting doubles the learners (1, 2, 4, ...): n_learners={n_learners} "
                             "must be a power of two, or set hierarchical: false")
        if not 0 <= final_stage < 1:
            raise ValueError(f"final_stage is the fraction of the steps for the all-data stage, in [0, 1); "
                             f"got {final_stage}")
        if recluster_every <= 0:
            raise ValueError(f"recluster_every (epochs) must be positive, got {recluster_every}")
        self.encoder = backbone
        features = getattr(backbone, "out_features", None)
        if features is None:
            raise ValueError(f"{type(backbone).__name__} does not say its out_features; the embedding head needs it")
        self.head = nn.Identity() if embedding_dim is None else nn.Linear(features, embedding_dim)
        self.dim = features if embedding_dim is None else embedding_dim
        self.subspaces = subspaces
        self.subspaces.reset(n_learners, self.dim)
        self.losses = nn.ModuleList(copy.deepcopy(loss) for _ in range(n_learners))
        self.final_loss = copy.deepcopy(loss)
        self.miner = miner
        self.optimizer = optimizer
        self.iterations = iterations
        self.n_learners = n_learners
        self.recluster_every = recluster_every
        self.final_stage = final_stage
        self.hierarchical = hierarchical
        self.m_per_class = m_per_class
        self.classes_per_batch = classes_per_batch
        self.distance = LpDistance(normalize_embeddings=True)

    def full_embedding(self, x: Tensor) -> Tensor:
        """(n, d) the shared embedding before normalisation."""
        return self.head(self.encoder(x))

    def embed(self, x: Tensor) -> Tensor:
        return F.normalize(self.full_embedding(x), dim=1)

    def check(self, train: LabeledData) -> None:
        if int((train.counts() >= 2).sum()) < 2:
            raise ValueError(f"{self.name} training needs at least two classes with two or more samples each; the "
                             f"training split has {int((train.counts() >= 2).sum())}: {MORE_TRAINING_CLASSES}")
        if len(train) < self.n_learners:
            raise ValueError(f"{self.name}: {self.n_learners} learners need at least as many training samples, "
                             f"the split has {len(train)}; lower method.learner.n_learners")

    # -- clustering ------------------------------------------------------------------------------------
    @torch.no_grad()
    def cluster_features(self, x: Tensor, batch: int = 512) -> Tensor:
        was_training = self.training
        self.eval()
        try:
            device = self.device
            parts = [F.normalize(self.encoder(x[i:i + batch].to(device)).float(), dim=1).cpu()
                     for i in range(0, len(x), batch)]
        finally:
            self.train(was_training)
        return torch.cat(parts)

    def assign(self, phase: Phase, previous: Tensor | None, x: Tensor, seed: int) -> Tensor:
        """Per training sample, the active learner of ``phase`` that owns it."""
        n = len(x)
        if phase.final or phase.n_active == 1:
            return torch.zeros(n, dtype=torch.long)
        features = self.cluster_features(x)
        if phase.level_start:
            return split_clusters(previous, features, phase.n_active // 2, seed)
        new = kmeans(features, phase.n_active, seed)
        return new if previous is None else match_clusters(previous, new, phase.n_active)

    def batches_for(self, members: Tensor, y: Tensor, n_batches: int, seed: int) -> tuple[Tensor, bool]:
        """(n_batches, batch) global indices of class-balanced batches drawn from ``members``; falls back to
        all samples (second value True) when fewer than two classes have two samples there."""
        labels = y[members]
        counts = torch.bincount(labels)
        eligible = torch.nonzero(counts >= 2).flatten()
        degenerate = len(eligible) < 2
        if degenerate:
            members = torch.arange(len(y))
            labels = y
            eligible = torch.nonzero(torch.bincount(y) >= 2).flatten()
        keep = torch.isin(labels, eligible)
        members, labels = members[keep], labels[keep]
        n_classes = min(self.classes_per_batch, len(eligible))
        local = balanced_batches(labels, self.m_per_class, self.m_per_class * n_classes, n_batches, seed=seed)
        return members[local], degenerate

    # -- training --------------------------------------------------------------------------------------
    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.check(train)
        self.to(ctx.device).train()
        x_cpu, y_cpu = train.x, train.y.cpu()
        x, y = train.x.to(ctx.device), train.y.to(ctx.device)
        n_classes = int(train.present_classes.numel())
        batch_size = self.m_per_class * min(self.classes_per_batch, n_classes)
        period = max(1, int(round(self.recluster_every * len(train) / batch_size)))
        phases = schedule(self.iterations, self.n_learners, self.hierarchical, self.final_stage, period)
        state: dict = {"phase": -1, "assignment": None, "streams": [], "used": []}
        log: list[dict] = []
        mined: list[int] = []

        def enter(p: int) -> None:
            phase = phases[p]
            if phase.level_start:
                self.subspaces.split(phase.n_active // 2)
                self._inherit_losses(phase.n_active // 2)
            # clusters of the images as evaluated: no training augmentation
            assignment = self.assign(phase, state["assignment"], without_augmentation(x_cpu),
                                     seed=ctx.seed + 101 * p)
            kept = None
            if state["assignment"] is not None and not phase.final and not phase.level_start \
                    and phases[p - 1].n_active == phase.n_active:
                kept = float((assignment == state["assignment"]).double().mean())
            streams, degenerate = [], 0
            for k in range(phase.n_active):
                n_batches = len(range(phase.start + k, phase.stop, phase.n_active))
                members = torch.nonzero(assignment == k).flatten()
                batches, bad = self.batches_for(members, y_cpu, max(1, n_batches),
                                                seed=ctx.seed + 1009 * (p * self.n_learners + k))
                streams.append(batches)
                degenerate += int(bad)
            state.update(phase=p, assignment=None if phase.final else assignment, streams=streams,
                         used=[0] * phase.n_active)
            log.append({"start": phase.start, "stop": phase.stop, "learners": phase.n_active, "final": phase.final,
                        "cluster_sizes": torch.bincount(assignment, minlength=phase.n_active).tolist(),
                        "classes_per_cluster": [int(torch.unique(y_cpu[assignment == k]).numel())
                                                for k in range(phase.n_active)],
                        "degenerate_clusters": degenerate, "kept_fraction": kept})

        def loss_at(step: int) -> Tensor:
            p = state["phase"]
            if p < 0 or step >= phases[p].stop:
                p += 1
                enter(p)
            phase = phases[p]
            k = (step - phase.start) % phase.n_active
            index = state["streams"][k][state["used"][k]].to(ctx.device)
            state["used"][k] += 1
            emb = self.full_embedding(x[index])
            if phase.final:
                view, loss_fn = F.normalize(emb, dim=1), self.final_loss
            else:
                row = (self.n_learners // phase.n_active) * k
                view, loss_fn = self.subspaces.view(emb, k, phase.n_active), self.losses[row]
            labels = y[index]
            tuples = self.miner(view, labels) if self.miner is not None else None
            if tuples is not None:
                mined.append(int(tuples[0].numel()))
            loss = loss_fn(view, labels, tuples)
            penalty = None if phase.final else self.subspaces.penalty(phase.n_active)
            return loss if penalty is None else loss + penalty

        report = optimise(loss_at, self.parameter_groups(), self.optimizer, self.iterations, ctx, self.name)
        report.notes.update({
            "n_learners": self.n_learners, "hierarchical": self.hierarchical, "embedding_dim": self.dim,
            "recluster_period_steps": period, "phases": log, "subspaces": self.subspaces.describe(),
            "mean_mined_tuples": sum(mined) / max(1, len(mined)),
            "steps_without_tuples": sum(1 for m in mined if m == 0)})
        return report

    def parameter_groups(self) -> list[dict]:
        """Optimiser groups: the views' own groups (the masks, at their learning-rate multiplier), then
        every other parameter at the configured learning rate."""
        own = self.subspaces.parameter_groups()
        taken = {id(p) for group in own for p in group["params"]}
        rest = [p for p in self.parameters() if id(p) not in taken]
        return [{"params": rest}, *own]

    @torch.no_grad()
    def _inherit_losses(self, n_active: int) -> None:
        """Going from ``n_active`` to ``2 * n_active`` learners: the second child takes a copy of its parent's
        loss state (matters for losses with parameters, e.g. a learned margin beta)."""
        stride = self.n_learners // n_active
        for k in range(n_active):
            parent = k * stride
            self.losses[parent + stride // 2].load_state_dict(self.losses[parent].state_dict())
