"""Image transforms for the lazy image sources, built from torchvision's ``transforms.v2``.

``EvalTransform`` is the deep-metric-learning evaluation transform (as in pytorch-metric-learning's
benchmarks and the papers it reproduces): the shorter side resized to ``resize`` (256), a centre crop of
``crop`` (224), ImageNet mean/std normalisation, RGB. Every size, the statistics and the colour mode are
options, so a CPU run can use e.g. 64-pixel crops. The output shape is known before any image is read
(``output_shape``), which is what ``ImageFiles.shape`` reports.

``TrainTransform`` is the training augmentation of the same papers: a random resized crop and a random
left-right flip, drawn from a generator handed in with each image (see ``ImageFiles.augmented``), so that
augmented batches are reproducible.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# one grey channel: the mean of the three ImageNet statistics
IMAGENET_GREY_MEAN = (0.449,)
IMAGENET_GREY_STD = (0.226,)


def _pair(value: int | Sequence[int], what: str, who: str = "EvalTransform") -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    h, w = (int(v) for v in value)
    if h < 1 or w < 1:
        raise ValueError(f"{who}: {what} must be positive, got {value}")
    return h, w


def _statistics(mean, std, grey: bool, who: str) -> tuple[list[float], list[float]]:
    """The per-channel normalisation statistics, checked: one value per channel, std positive; None gives
    ImageNet's (their mean for one grey channel)."""
    channels = 1 if grey else 3
    mean = (IMAGENET_GREY_MEAN if grey else IMAGENET_MEAN) if mean is None else mean
    std = (IMAGENET_GREY_STD if grey else IMAGENET_STD) if std is None else std
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    for what, values in (("mean", mean), ("std", std)):
        if len(values) != channels:
            raise ValueError(f"{who}: {what} has {len(values)} values but the images have {channels} "
                             f"channel(s) (grey={grey}); give {channels} value(s) or null for ImageNet's")
    if any(s <= 0 for s in std):
        raise ValueError(f"{who}: std must be positive, got {std}")
    return mean, std


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
        self.mean, self.std = _statistics(mean, std, self.grey, "EvalTransform")
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


def random_resized_box(height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
                       generator: torch.Generator, attempts: int = 10) -> tuple[int, int, int, int]:
    """(top, left, box height, box width) of a random crop of an image of ``height`` x ``width``: its area
    a fraction of the image's drawn uniformly from ``scale``, its aspect ratio (width / height) drawn
    log-uniformly from ``ratio``, its place uniform among those that fit. Up to ``attempts`` draws are made
    for a box that fits; failing that, the largest centred box whose aspect ratio is within ``ratio``
    (the Inception-style crop of Szegedy et al. 2015, as the DML papers train with)."""
    lo_scale, hi_scale = (float(s) for s in scale)
    lo_log, hi_log = math.log(float(ratio[0])), math.log(float(ratio[1]))
    area = height * width
    for _ in range(attempts):
        u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        target = area * (lo_scale + (hi_scale - lo_scale) * u[0])
        aspect = math.exp(lo_log + (hi_log - lo_log) * u[1])
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = min(int(u[2] * (height - h + 1)), height - h)
            left = min(int(u[3] * (width - w + 1)), width - w)
            return top, left, h, w
    image_aspect = width / height
    if image_aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif image_aspect > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class TrainTransform:
    """The DML training augmentation: PIL image -> normalised float tensor (C, crop_h, crop_w) of a random
    resized crop (area fraction in ``scale``, aspect ratio in ``ratio``; torchvision's
    ``RandomResizedCrop`` defaults), flipped left-right with probability ``flip``.

    The randomness comes only from the ``generator`` passed with each image, so a lazy image array that
    hands every image its own seeded generator decodes the same batch the same way whatever the number of
    decoding threads (``datasets.image_files.ImageFiles.augmented``); torchvision's ``RandomResizedCrop``
    draws from torch's global generator, which decoding threads share, hence ``random_resized_box``.
    mean, std, grey: as ``EvalTransform``.
    """

    def __init__(self, crop: int | Sequence[int] = 224, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), flip: float = 0.5,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 grey: bool = False) -> None:
        from torchvision.transforms import v2

        self.crop = _pair(crop, "crop", "TrainTransform")
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"TrainTransform: scale must be [low, high] with 0 < low <= high <= 1, got {list(scale)}")
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"TrainTransform: ratio must be [low, high] with 0 < low <= high, got {list(ratio)}")
        if not 0 <= float(flip) <= 1:
            raise ValueError(f"TrainTransform: flip is a probability in [0, 1], got {flip}")
        self.flip = float(flip)
        self.grey = bool(grey)
        self.mean, self.std = _statistics(mean, std, self.grey, "TrainTransform")
        self.to_tensor = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                                     v2.Normalize(self.mean, self.std)])

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (1 if self.grey else 3, *self.crop)

    def __call__(self, image, generator: torch.Generator | None = None) -> Tensor:
        from torchvision.transforms.v2 import functional as TF

        if generator is None:
            raise TypeError("TrainTransform needs a torch.Generator with each image (its only source of "
                            "randomness, for reproducible batches); ImageFiles.augmented passes one")
        image = image.convert("L" if self.grey else "RGB")
        top, left, h, w = random_resized_box(image.height, image.width, self.scale, self.ratio, generator)
        image = TF.resized_crop(image, top, left, h, w, list(self.crop), antialias=True)
        if float(torch.rand(1, generator=generator, dtype=torch.float64)) < self.flip:
            image = TF.horizontal_flip(image)
        return self.to_tensor(image)

    def __repr__(self) -> str:
        return (f"TrainTransform(crop={self.crop}, scale={list(self.scale)}, ratio={list(self.ratio)}, "
                f"flip={self.flip}, mean={self.mean}, std={self.std}, grey={self.grey})")
