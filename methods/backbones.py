"""Backbones, chosen in ``conf/backbone/``: an MLP for vector data and Conv-4 for images.

``input_shape`` is known only at run time; the runner fills it in from the data before instantiation.
"""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from methods.bounds import Count


class MLP(nn.Module):
    """Flatten, then Linear-BatchNorm-ReLU blocks, then a linear projection to ``out_features``."""

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[Count] = (256,), out_features: Count = 64):
        super().__init__()
        in_features = math.prod(input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU()]
            in_features = width
        layers.append(nn.Linear(in_features, out_features))
        self.net = nn.Sequential(*layers)
        self.out_features = out_features
        self.input_shape = tuple(input_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Conv4(nn.Module):
    """The few-shot Conv-4: ``depth`` blocks of [conv3x3 (``channels``), BatchNorm, ReLU, maxpool 2], flattened."""

    def __init__(self, input_shape: Sequence[int], channels: Count = 64, depth: Count = 4):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"Conv4 needs image inputs (channels, height, width) but the data has shape {tuple(input_shape)}; "
                "use backbone=mlp for vector data"
            )
        c, h, w = input_shape
        blocks: list[nn.Module] = []
        for _ in range(depth):
            blocks += [nn.Conv2d(c, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = channels, h // 2, w // 2
        if h < 1 or w < 1:
            fits = max(0, min(input_shape[1], input_shape[2]).bit_length() - 1)  # halvings that leave 1 pixel
            raise ValueError(f"Conv4 with depth {depth} shrinks {tuple(input_shape)} to nothing (each block halves "
                             f"height and width): "
                             + (f"set backbone.depth={fits} or lower, the most these images allow, or use larger "
                                "images" if fits else "these images are too small for it; use backbone=mlp"))
        self.net = nn.Sequential(*blocks, nn.Flatten())
        self.out_features = channels * h * w
        self.input_shape = tuple(input_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
