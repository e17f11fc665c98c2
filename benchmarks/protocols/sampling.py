"""Seeded per-class subsampling of a split, shared by the retrieval and verification protocols."""
from __future__ import annotations

import torch


def cap_per_class(labels: torch.Tensor, max_per_class: int | None, seed: int) -> torch.Tensor:
    """Sorted indices keeping at most ``max_per_class`` random samples of each class (all if None)."""
    if max_per_class is None:
        return torch.arange(len(labels))
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        keep.append(members[torch.randperm(len(members), generator=gen)[:max_per_class]])
    return torch.sort(torch.cat(keep)).values
