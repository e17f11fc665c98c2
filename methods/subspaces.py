"""How the divide-and-conquer learners share one embedding (Sanakoyeu et al., CVPR 2019 and TPAMI 2021).

An embedding of size d is served to K learners. At any moment ``n_active`` of them are training
(``n_active`` = K, or 1, 2, 4, ... K when clusters are split hierarchically); active learner j of
``n_active`` owns the block of final learners ``j * K / n_active ... (j + 1) * K / n_active - 1``, so a
learner's two children at the next level are 2j and 2j + 1 and own the two halves of its block.

- ``FixedSlices`` (CVPR 2019): final learner k owns the k-th contiguous slice of the embedding
  (``torch.tensor_split`` of the d coordinates into K near-equal parts); an active learner owns the union
  of its block's slices, which is again contiguous. The slices of the K final learners partition the
  embedding. Nothing to learn, no penalty.
- ``LearnableMasks`` (TPAMI 2021): a mask m_k in R^d per final learner, initialised to ones; the
  learner's view is normalize(ReLU(m) * e) with the mask of the first final learner of its block. When a
  learner splits, its second child's mask is set to a copy of its own (the first child keeps the very
  same row), so both children start where the parent was. The orthogonality penalty is
  lambda * mean over ordered pairs i != j of the active masks of cos(ReLU(m_i), ReLU(m_j)).
  Equal masks are a stationary point of that penalty (the gradient of cos(a, b) at a = b is zero), so
  the masks can only part through the different data of their learners; the masks therefore train at
  ``lr_multiplier`` times the optimiser's learning rate (100, with lambda = 0.01, as in the authors'
  sample command: ``--mask-lr-mult=100 --masking-lambda=0.01``). With K = 1 there is no other mask: the
  single learner's view is the whole normalised embedding and the mask is not trained, so K = 1 is the
  plain network for both kinds.

The full embedding (all d coordinates, L2-normalised) is what the learner uses at test time and in the
final all-data stage, for both kinds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.bounds import NonNegative, Positive


def _block(k: int, n_active: int, n_learners: int) -> range:
    """The final learners owned by active learner ``k`` of ``n_active``."""
    if n_learners % n_active:
        raise ValueError(f"{n_active} active learners do not divide the {n_learners} final ones")
    if not 0 <= k < n_active:
        raise IndexError(f"learner {k} of {n_active}")
    stride = n_learners // n_active
    return range(k * stride, (k + 1) * stride)


class FixedSlices(nn.Module):
    """Contiguous slices of the embedding, one per final learner."""

    def __init__(self) -> None:
        super().__init__()
        self.n_learners = 0
        self.dim = 0
        self.bounds: list[tuple[int, int]] = []

    def reset(self, n_learners: int, dim: int) -> None:
        if dim < n_learners:
            raise ValueError(f"an embedding of {dim} coordinates cannot be cut into {n_learners} slices; "
                             "raise embedding_dim or lower n_learners")
        self.n_learners, self.dim = n_learners, dim
        parts = torch.tensor_split(torch.arange(dim), n_learners)
        self.bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

    def span(self, k: int, n_active: int) -> tuple[int, int]:
        block = _block(k, n_active, self.n_learners)
        return self.bounds[block.start][0], self.bounds[block.stop - 1][1]

    def weights(self, k: int, n_active: int) -> Tensor:
        """(d,) the coordinate weights of learner k's view: 1 inside its slice, 0 outside."""
        start, stop = self.span(k, n_active)
        w = torch.zeros(self.dim)
        w[start:stop] = 1.0
        return w

    def view(self, emb: Tensor, k: int, n_active: int) -> Tensor:
        start, stop = self.span(k, n_active)
        return F.normalize(emb[:, start:stop], dim=1)

    def penalty(self, n_active: int) -> Tensor | None:
        return None

    def parameter_groups(self) -> list[dict]:
        return []

    def split(self, n_active: int) -> None:
        """Going from ``n_active`` to ``2 * n_active`` learners: each slice block halves, nothing to copy."""

    def describe(self) -> dict:
        return {"kind": "fixed_slices", "bounds": [list(b) for b in self.bounds]}


class LearnableMasks(nn.Module):
    """One learnable mask per final learner (TPAMI 2021), with an orthogonality penalty between them."""

    def __init__(self, orthogonality_weight: NonNegative = 0.01, lr_multiplier: Positive = 100.0) -> None:
        super().__init__()
        if lr_multiplier <= 0:
            raise ValueError(f"lr_multiplier scales the optimiser's learning rate for the masks; it must be "
                             f"positive, got {lr_multiplier}")
        self.orthogonality_weight = float(orthogonality_weight)
        self.lr_multiplier = float(lr_multiplier)
        self.n_learners = 0
        self.masks = nn.Parameter(torch.ones(0, 0))

    def reset(self, n_learners: int, dim: int) -> None:
        self.n_learners = n_learners
        # one learner has no other mask to differ from: its view is the whole embedding, nothing to learn
        self.masks = nn.Parameter(torch.ones(n_learners, dim), requires_grad=n_learners > 1)

    def _row(self, k: int, n_active: int) -> int:
        return _block(k, n_active, self.n_learners).start

    def active_masks(self, n_active: int) -> Tensor:
        """(n_active, d) the masks of the active learners, after the ReLU."""
        rows = [self._row(k, n_active) for k in range(n_active)]
        return F.relu(self.masks[rows])

    def weights(self, k: int, n_active: int) -> Tensor:
        """(d,) the coordinate weights of learner k's view: ReLU of its mask."""
        return F.relu(self.masks[self._row(k, n_active)]).detach().clone()

    def view(self, emb: Tensor, k: int, n_active: int) -> Tensor:
        if self.n_learners == 1:
            return F.normalize(emb, dim=1)
        return F.normalize(F.relu(self.masks[self._row(k, n_active)]) * emb, dim=1)

    def parameter_groups(self) -> list[dict]:
        """The masks as one optimiser group, at ``lr_multiplier`` times the configured learning rate."""
        return [{"params": [self.masks], "lr_multiplier": self.lr_multiplier}]

    def penalty(self, n_active: int) -> Tensor | None:
        if n_active < 2 or self.orthogonality_weight == 0:
            return None
        return self.orthogonality_weight * orthogonality_loss(self.active_masks(n_active))

    @torch.no_grad()
    def split(self, n_active: int) -> None:
        """Going from ``n_active`` to ``2 * n_active`` learners: learner k's second child starts from a copy
        of k's mask (its first child is k's own row)."""
        for k in range(n_active):
            parent = self._row(k, n_active)
            second_child = self._row(2 * k + 1, 2 * n_active)
            self.masks[second_child] = self.masks[parent]

    def describe(self) -> dict:
        masks = F.relu(self.masks.detach())
        cos = F.normalize(masks, dim=1) @ F.normalize(masks, dim=1).T if len(masks) else masks
        return {"kind": "learnable_masks", "orthogonality_weight": self.orthogonality_weight,
                "lr_multiplier": self.lr_multiplier,
                "dead_coordinates": [int(v) for v in (masks == 0).sum(1)],
                "mask_mean": [round(float(v), 4) for v in masks.mean(1)],
                "mask_cosine": [[round(float(v), 4) for v in row] for row in cos]}


def orthogonality_loss(masks: Tensor) -> Tensor:
    """mean over ordered pairs i != j of cos(masks[i], masks[j]), for (K, d) non-negative masks (K >= 2)."""
    k = masks.shape[0]
    unit = F.normalize(masks, dim=1)
    cos = unit @ unit.T
    off_diagonal = cos.sum() - cos.diagonal().sum()
    return off_diagonal / (k * (k - 1))
