"""Episodic training shared by the few-shot learners (prototypical and matching networks).

Each step draws one N-way K-shot Q-query episode from the training split (seeded by the run's seed),
embeds support and query samples together in one batch, scores the queries against the support set with
the learner's own ``episode_scores`` and takes an optimiser step on ``loss(scores, query_labels)``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datasets.episodes import sample_episodes
from datasets.labeled import LabeledData
from methods.base import FitReport, RunContext
from methods.training import optimise

# (support_emb, support_y, query_emb) -> (n_query, n_way) scores
EpisodeScores = Callable[[Tensor, Tensor, Tensor], Tensor]


def fit_episodic(learner: nn.Module, encoder: nn.Module, episode_scores: EpisodeScores, train: LabeledData,
                 ctx: RunContext, *, optimizer: Callable, iterations: int, n_way: int, k_shot: int, n_query: int,
                 name: str, loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> FitReport:
    """Train ``learner`` (all its parameters) for ``iterations`` episodes; ``encoder`` embeds the inputs.

    Labels within an episode are 0..N-1 in the order of the episode's classes; the support (and the
    query) samples are laid out class by class, K (Q) per class.
    """
    learner.to(ctx.device).train()
    episodes = sample_episodes(train.y, n_way, k_shot, n_query, iterations, seed=ctx.seed)
    x = train.x.to(ctx.device)
    support_y = torch.arange(n_way, device=ctx.device).repeat_interleave(k_shot)
    query_y = torch.arange(n_way, device=ctx.device).repeat_interleave(n_query)
    n_support = n_way * k_shot

    def loss_at(step: int) -> Tensor:
        index = torch.cat([episodes.support[step].flatten(), episodes.query[step].flatten()]).to(ctx.device)
        emb = encoder(x[index])
        scores = episode_scores(emb[:n_support], support_y, emb[n_support:])
        return loss(scores, query_y)

    report = optimise(loss_at, learner.parameters(), optimizer, iterations, ctx, name)
    report.notes.update(train_way=n_way, train_shot=k_shot, train_query=n_query)
    return report
