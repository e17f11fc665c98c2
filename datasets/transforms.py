"""Image transforms for the lazy image sources, built from torchvision's ``transforms.v2``.

``EvalTransform`` is the deep-metric-learning evaluation transform (as in pytorch-metric-learning's
benchmarks and the papers it reproduces): the shorter side resized to ``resize`` (256), a centre crop of
``crop`` (224), ImageNet mean/std normalisation, RGB. Every size, the statistics and the colour mode are
options, so a CPU run can use e.g. 64-pixel crops. The output shape is known before any image is read
(``output_shape``), which is what ``ImageFiles.shape`` reports.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# one grey channel: the mean of the three ImageNet statistics
IMAGENET_GREY_MEAN = (0.449,)
IMAGENET_GREY_STD = (0.226,)


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    h, w = (int(v) for v in value)
    if h < 1 or w < 1:
        raise ValueError(f"EvalTransform: {what} must be positive, got {value}")
    return h, w


class EvalTransform:
    """PIL image -> normalised float tensor (C, crop_h, crop_w).

    resize: the shorter side is resized to this (aspect kept), or None for no resize. crop: the centre
        crop, an int (square) or [height, width] (an image smaller than the crop is padded with zeros).
    mean, std: per-channel statistics (one value per channel); None gives ImageNet's (their mean for
        grey). grey: one grey channel instead of RGB.
    """

    def __init__(self, resize: int | None = 256, crop: int | Sequence[int] = 224,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 grey: bool = False) -> None:
        from torchvision.transforms import v2

        self.grey = bool(grey)
        channels = 1 if self.grey else 3
        mean = (IMAGENET_GREY_MEAN if self.grey else IMAGENET_MEAN) if mean is None else mean
        std = (IMAGENET_GREY_STD if self.grey else IMAGENET_STD) if std is None else std
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        for what, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != channels:
                raise ValueError(f"EvalTransform: {what} has {len(values)} values but the images have {channels} "
                                 f"channel(s) (grey={self.grey}); give {channels} value(s) or null for ImageNet's")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"EvalTransform: std must be positive, got {self.std}")
        if resize is not None and int(resize) < 1:
            raise ValueError(f"EvalTransform: resize must be positive or null, got {resize}")
        self.resize = None if resize is None else int(resize)
        self.crop = _pair(crop, "crop")
        steps = [] if self.resize is None else [v2.Resize(self.resize, antialias=True)]
        steps += [v2.CenterCrop(list(self.crop)), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                  v2.Normalize(self.mean, self.std)]
        self.pipeline = v2.Compose(steps)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (1 if self.grey else 3, *self.crop)

    def __call__(self, image) -> Tensor:
        """``image``: a PIL image of any mode (grey, palette, CMYK, RGBA are converted)."""
        image = image.convert("L" if self.grey else "RGB")
        return self.pipeline(image)

    def __repr__(self) -> str:
        return (f"EvalTransform(resize={self.resize}, crop={self.crop}, mean={self.mean}, std={self.std}, "
                f"grey={self.grey})")
