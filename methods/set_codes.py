"""The set encoder of Set Distribution Networks: a set of images -> a binary code of B bits.

    code(S) = binarize(W · mean_{x in S} c(x) + b)

c is a convolutional (or any) feature extractor; the mean makes the code invariant to the order of the
set and to its size in the sense that a set and the same set with every member repeated get the same
code. The binarisation is straight-through (Bengio et al. 2013): the forward pass gives hard bits
1[logit > 0] (= 1[sigmoid(logit) > 1/2]); the backward pass uses the gradient of sigmoid(logit), the
bit's soft relaxation. (A choice where the seed names the straight-through family without its variant:
this one is deterministic, so a set always gets the same code.)

Sets come as a tensor (n_sets, set_size, ...) with an optional boolean ``mask`` (n_sets, set_size) marking
the real members, so sets of different sizes can share a batch; every set needs at least one member.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor) -> Tensor:
        soft = torch.sigmoid(logits)
        ctx.save_for_backward(soft)
        return (logits > 0).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (soft,) = ctx.saved_tensors
        return grad * soft * (1 - soft)


def binarize_straight_through(logits: Tensor) -> Tensor:
    """Hard 0/1 bits of ``logits`` forward; d bit / d logit = sigmoid'(logit) backward."""
    return _StraightThrough.apply(logits)


def set_mean(features: Tensor, mask: Tensor | None = None) -> Tensor:
    """(n_sets, d) mean of the member features (n_sets, set_size, d) over the members ``mask`` marks."""
    if features.dim() != 3:
        raise ValueError(f"set_mean: features must be (n_sets, set_size, d), got {tuple(features.shape)}")
    if mask is None:
        return features.mean(1)
    if mask.shape != features.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(f"set_mean: mask must be a bool tensor of shape {tuple(features.shape[:2])}, got "
                         f"{mask.dtype} {tuple(mask.shape)}")
    counts = mask.sum(1)
    if bool((counts == 0).any()):
        raise ValueError(f"set_mean: set(s) {torch.nonzero(counts == 0).flatten().tolist()} have no member")
    weights = mask.to(features.dtype) / counts[:, None].to(features.dtype)
    return torch.einsum("sn,snd->sd", weights, features)


class SetEncoder(nn.Module):
    """features: a module mapping a batch of members (N, ...) to (N, d) with an ``out_features``
    attribute; bits: the code length B."""

    def __init__(self, features: nn.Module, bits: int) -> None:
        super().__init__()
        width = getattr(features, "out_features", None)
        if width is None:
            raise ValueError(f"SetEncoder: {type(features).__name__} does not say its out_features")
        if bits < 1:
            raise ValueError(f"SetEncoder: bits must be at least 1, got {bits}")
        self.features = features
        self.to_logits = nn.Linear(int(width), bits)
        self.bits = bits

    def logits(self, sets: Tensor, mask: Tensor | None = None) -> Tensor:
        """(n_sets, bits) code logits of ``sets`` (n_sets, set_size, ...)."""
        n_sets, size = sets.shape[:2]
        members = self.features(sets.reshape(n_sets * size, *sets.shape[2:]))
        return self.to_logits(set_mean(members.reshape(n_sets, size, -1), mask))

    def forward(self, sets: Tensor, mask: Tensor | None = None) -> Tensor:
        """(n_sets, bits) binary codes, differentiable straight through."""
        return binarize_straight_through(self.logits(sets, mask))
