"""Few-shot classification: accuracy over E episodes on held-out classes, mean and 95% CI.

Every test sample is embedded once; each episode then adapts the learner on the embedded support set and
scores the embedded queries, in batches of episodes for learners that offer ``score_episodes``. Episodes
come from the data seed, so every learner sees the very same ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.stats import mean_ci
from datasets.episodes import check_episode_shape, sample_episodes
from datasets.image_files import take
from datasets.splits import ClassDisjointSplit, Split
from methods.base import Learner, RunContext, embed_all
from methods.bounds import Count, TwoOrMore


def metric_name(n_way: int, k_shot: int) -> str:
    return f"acc_{n_way}w{k_shot}s"


@dataclass
class FewShotProtocol:
    n_way: TwoOrMore = 5
    shots: tuple[Count, ...] = (1, 5)
    n_query: Count = 15
    n_episodes: Count = 600
    split: Any = field(default_factory=ClassDisjointSplit)
    episodes_per_batch: Count = 32  # episodes scored together by learners with ``score_episodes``
    name: str = "fewshot"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "adapt")

    def metric_names(self) -> list[str]:
        """The metrics ``evaluate`` reports, known from the settings alone (an objective is checked against them
        before any training)."""
        return [metric_name(self.n_way, k) for k in self.shots]

    def check(self, split: Split) -> None:
        for k in sorted(self.shots, reverse=True):  # the largest first: a fix it names fits every shot
            check_episode_shape(split.test.y, self.n_way, k, self.n_query)

    def episodes(self, split: Split, k_shot: int, data_seed: int):
        return sample_episodes(split.test.y, self.n_way, k_shot, self.n_query, self.n_episodes,
                               seed=data_seed * 7919 + self.n_way * 101 + k_shot)

    @torch.no_grad()
    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        all_episodes = {k: self.episodes(split, k, data_seed) for k in self.shots}
        used = torch.unique(torch.cat([torch.cat([e.support.flatten(), e.query.flatten()])
                                       for e in all_episodes.values()]))
        position = torch.full((len(split.test),), -1, dtype=torch.long)
        position[used] = torch.arange(len(used))
        emb = embed_all(learner, take(split.test.x, used))  # lazy images: decoded batch by batch
        metrics, artifacts, units = {}, {}, {}
        for k, eps in all_episodes.items():
            support_y = torch.arange(self.n_way).repeat_interleave(k)
            query_y = torch.arange(self.n_way).repeat_interleave(self.n_query)
            correct = self._score(learner, emb, position, eps, support_y, query_y, ctx, f"{self.n_way}-way {k}-shot")
            name = metric_name(self.n_way, k)
            metrics[name] = mean_ci(correct.numpy())
            units[name] = correct.numpy()
            # indices into the test split; the record keeps the split's own indices into the dataset
            artifacts[f"episodes_{name}"] = {"classes": eps.classes.numpy(), "support": eps.support.numpy(),
                                             "query": eps.query.numpy()}
        return ProtocolResult(metrics=metrics, artifacts=artifacts, units=units)

    def _score(self, learner: Learner, emb, position, eps, support_y, query_y, ctx: RunContext, desc: str):
        """Per-episode accuracy: ``episodes_per_batch`` episodes at a time through the learner's
        ``score_episodes`` when it has one, else one ``adapt`` + ``score`` per episode."""
        batched = getattr(learner, "score_episodes", None)
        step = self.episodes_per_batch if batched is not None else 1
        expected = (len(query_y), self.n_way)
        correct = torch.empty(eps.n_episodes)
        bar = tqdm(range(0, eps.n_episodes, step), desc=desc, disable=not ctx.progress, leave=False, mininterval=1.0)
        for start in bar:
            rows = slice(start, min(start + step, eps.n_episodes))
            support = emb[position[eps.support[rows].flatten()]].view(-1, len(support_y), emb.shape[1])
            query = emb[position[eps.query[rows].flatten()]].view(-1, len(query_y), emb.shape[1])
            if batched is not None:
                scores = batched(support, support_y, query)
            else:
                scores = learner.adapt(support[0], support_y).score(query[0])[None]
            if scores.shape[1:] != expected:
                raise ValueError(f"scorer returned shape {tuple(scores.shape[1:])} per episode, expected {expected}")
            correct[rows] = (scores.argmax(2) == query_y).float().mean(1)
        return correct
