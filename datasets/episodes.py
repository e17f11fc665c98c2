"""N-way K-shot Q-query episodes drawn from a seed.

Episodes are index tensors into one labelled set, so every learner is scored on the very same
support and query samples, and the indices can be stored with the run's record.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


# The settings' names as a learner or protocol knows them, and what gives a side of the split more classes;
# the runner names them as a user sets them (benchmarks.run.episodes_named).
GENERIC_NAMES = {"n_way": "n_way", "k_shot": "k_shot", "n_query": "n_query",
                 "more_classes": "use data with more classes on this side of the split"}


class EpisodeError(ValueError):
    """An episode the split cannot give (too many ways or shots). One made by ``about_settings`` names the
    episode's settings in its message; ``naming`` gives it again with the names a user would set
    (``protocol.evaluator.n_query``, ``train_episode.k_shot``): only the runner knows those, so learners and
    protocols raise it with the generic names."""

    def __init__(self, message: str, template: str | None = None) -> None:
        super().__init__(message)
        self.template = template

    @classmethod
    def about_settings(cls, template: str, names: dict[str, str] | None = None) -> "EpisodeError":
        return cls(template.format(**(GENERIC_NAMES | (names or {}))), template)

    def naming(self, names: dict[str, str]) -> "EpisodeError":
        return self if self.template is None else EpisodeError.about_settings(self.template, names)


@dataclass(frozen=True)
class Episodes:
    """``n_episodes`` episodes over one labelled set.

    classes: (E, N) class ids of each episode, in the order that defines the episode's labels 0..N-1.
    support: (E, N, K) sample indices, row n holding class ``classes[e, n]``.
    query:   (E, N, Q) sample indices, disjoint from the support of the same episode.
    """

    classes: Tensor
    support: Tensor
    query: Tensor

    @property
    def n_episodes(self) -> int:
        return int(self.classes.shape[0])

    @property
    def n_way(self) -> int:
        return int(self.classes.shape[1])

    @property
    def k_shot(self) -> int:
        return int(self.support.shape[2])

    @property
    def n_query(self) -> int:
        return int(self.query.shape[2])

    def to_lists(self) -> dict:
        return {"classes": self.classes.tolist(), "support": self.support.tolist(), "query": self.query.tolist()}


def check_episode_shape(labels: Tensor, n_way: int, k_shot: int, n_query: int) -> None:
    """Raise a clear error if ``labels`` cannot give such episodes (naming the settings to change, and a
    value that fits where one setting alone can fix it); cheap, call it before training."""
    if n_way < 1 or k_shot < 1 or n_query < 1:
        raise EpisodeError(f"n_way, k_shot and n_query must be >= 1 (got {n_way}, {k_shot}, {n_query})")
    counts = torch.bincount(labels)
    present = int((counts > 0).sum())
    if n_way > present:
        raise EpisodeError.about_settings(
            f"{n_way}-way episodes need {n_way} classes but the split has {present}. "
            + (f"Lower {{n_way}} to at most {present}, or {{more_classes}}." if present >= 2 else
               "An episode needs at least 2: {more_classes}.")
        )
    need = k_shot + n_query
    eligible = int((counts >= need).sum())
    if eligible < n_way:
        smallest = int(counts[counts > 0].min())
        nth = int(counts.sort(descending=True).values[n_way - 1])  # the n_way-th largest class: what fits
        fits = [f"{{n_query}}={nth - k_shot}"] if nth > k_shot else []
        fits += [f"{{k_shot}} up to {nth - n_query}"] if nth > n_query and not fits else []  # shots: a list
        fits += [f"{{n_way}}={eligible}"] if eligible >= 2 else []
        raise EpisodeError.about_settings(
            f"{k_shot}-shot {n_query}-query episodes need {need} samples in each of {n_way} classes, "
            f"but only {eligible} classes have that many (the smallest class has {smallest}). "
            "Lower {k_shot} or {n_query}" + (", or lower {n_way}" if eligible >= 2 else "")
            + (f" ({' or '.join(fits)} fits)." if fits else ".")
        )


def sample_episodes(labels: Tensor, n_way: int, k_shot: int, n_query: int, n_episodes: int, seed: int) -> Episodes:
    """Draw episodes: N classes among those with at least K+Q samples, then K+Q distinct samples each."""
    check_episode_shape(labels, n_way, k_shot, n_query)
    gen = torch.Generator().manual_seed(seed)
    counts = torch.bincount(labels)
    eligible = torch.nonzero(counts >= k_shot + n_query).flatten()
    members = {int(c): torch.nonzero(labels == c).flatten() for c in eligible}
    classes = torch.empty(n_episodes, n_way, dtype=torch.long)
    support = torch.empty(n_episodes, n_way, k_shot, dtype=torch.long)
    query = torch.empty(n_episodes, n_way, n_query, dtype=torch.long)
    for e in range(n_episodes):
        chosen = eligible[torch.randperm(len(eligible), generator=gen)[:n_way]]
        classes[e] = chosen
        for n, c in enumerate(chosen.tolist()):
            pool = members[c]
            picked = pool[torch.randperm(len(pool), generator=gen)[: k_shot + n_query]]
            support[e, n] = picked[:k_shot]
            query[e, n] = picked[k_shot:]
    return Episodes(classes=classes, support=support, query=query)
