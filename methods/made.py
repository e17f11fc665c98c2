"""A masked autoencoder for distribution estimation (MADE; Germain et al., ICML 2015) over binary codes:
the set prior of Set Distribution Networks, so that new set codes can be sampled.

For a code z in {0, 1}^B, p(z) = prod_i p(z_i | z_<i) with each conditional a Bernoulli whose logit the
network computes from z_<i only. The order is the code's own (bit 1 first). The network is a multilayer
perceptron whose weights are masked so that output i is connected to inputs 1..i-1 and no others:

- each hidden unit k of every layer gets a degree m(k) in 1..B-1 (the largest input it may see); the
  degrees cycle through 1..B-1 in order, so every degree is present when a layer has at least B-1 units
  (a choice: the paper draws them at random; cycling gives the same connectivity for every seed);
- input d -> first-layer unit k when m(k) >= d; unit k -> next-layer unit k' when m(k') >= m(k);
- last-layer unit k -> output i when i > m(k). Output 1 sees no input: its logit is its bias alone.

``log_prob(z)`` sums the conditionals' log-likelihoods; ``sample(n, generator)`` draws bit by bit (B
passes). ``tests/test_made.py`` checks the autoregressive property through the Jacobian, that the
conditionals sum to one over all codes, and that a fit learns a dependent toy distribution.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        if mask.shape != (out_features, in_features):
            raise ValueError(f"MaskedLinear: mask of shape {tuple(mask.shape)} for a {in_features} -> "
                             f"{out_features} layer")
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def hidden_degrees(n_units: int, bits: int) -> Tensor:
    """Degrees 1..bits-1 cycled over ``n_units`` hidden units (all ones when bits <= 2)."""
    return torch.arange(n_units) % max(1, bits - 1) + 1


class MADE(nn.Module):
    """Autoregressive Bernoulli model over ``bits``-bit codes. hidden: the widths of the hidden layers
    (each at least bits - 1, so that every conditional can depend on all its predecessors)."""

    def __init__(self, bits: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        if bits < 1:
            raise ValueError(f"MADE: bits must be at least 1, got {bits}")
        hidden = [int(h) for h in hidden]
        if not hidden or any(h < max(1, bits - 1) for h in hidden):
            raise ValueError(f"MADE: give at least one hidden layer, each of at least bits - 1 = {bits - 1} "
                             f"units (got {hidden}), or some conditionals cannot see all earlier bits")
        self.bits = bits
        inputs = torch.arange(1, bits + 1)
        layers, previous = [], inputs
        widths = [bits, *hidden]
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            degrees = hidden_degrees(width_out, bits)
            layers.append(MaskedLinear(width_in, width_out, (degrees[:, None] >= previous[None, :]).long()))
            previous = degrees
        self.hidden_layers = nn.ModuleList(layers)
        self.output = MaskedLinear(widths[-1], bits, (inputs[:, None] > previous[None, :]).long())

    def logits(self, z: Tensor) -> Tensor:
        """(n, bits) logit of p(z_i = 1 | z_<i) for every i, from codes ``z`` (n, bits) of 0/1 floats."""
        if z.dim() != 2 or z.shape[1] != self.bits:
            raise ValueError(f"MADE: codes must be (n, {self.bits}), got {tuple(z.shape)}")
        h = z
        for layer in self.hidden_layers:
            h = torch.relu(layer(h))
        return self.output(h)

    def log_prob(self, z: Tensor) -> Tensor:
        """(n,) log p(z) of 0/1 codes."""
        return -F.binary_cross_entropy_with_logits(self.logits(z), z, reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, bits) codes drawn from the model, bit by bit."""
        device = self.output.weight.device
        z = torch.zeros(n, self.bits, device=device)
        for i in range(self.bits):
            p = torch.sigmoid(self.logits(z)[:, i])
            u = torch.rand(n, generator=generator, device="cpu").to(device)
            z[:, i] = (u < p.to(u.device)).to(z.dtype)
        return z
