"""Small data sources and files the tests build themselves."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from datasets.labeled import LabeledData
from datasets.sklearn_sources import digits
from methods.protonet import PrototypicalNetwork


def nan_digits() -> LabeledData:
    """Digits with NaNs planted in the inputs: any learner's loss becomes NaN."""
    data = digits()
    x = data.x.clone()
    x[::7, 5] = float("nan")
    return data.with_inputs(x)


class BrokenPrototypicalNetwork(PrototypicalNetwork):
    """Prototypical networks with a bug inside ``fit``: an error that is no input's fault."""

    def fit(self, train, ctx):
        return {}["a key fit expects"]


def blobs(n_classes: int = 6, per_class: int = 30, dim: int = 8, seed: int = 0, spread: float = 4.0) -> LabeledData:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=gen) * spread
    x = centres.repeat_interleave(per_class, 0) + torch.randn(n_classes * per_class, dim, generator=gen)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    return LabeledData(x=x, y=y, classes=[f"c{i}" for i in range(n_classes)], name="blobs")


def tiny_images(n_classes: int = 6, per_class: int = 12, size: int = 28) -> LabeledData:
    data = blobs(n_classes, per_class, dim=size * size)
    return LabeledData(x=data.x.view(-1, 1, size, size), y=data.y, classes=data.classes, name="tiny_images")


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(payload)
    else:
        Path(path).write_bytes(payload)


def write_fake_fashion(folder: Path, per_class: int = 5, compress: bool = True) -> None:
    """A Fashion-MNIST folder in the official IDX layout, with class c's images all equal to 10*c."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", per_class), ("t10k", 2)):
        labels = np.repeat(np.arange(10), n)
        images = np.repeat((labels * 10).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
        write_idx(folder / f"{part}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{part}-labels-idx1-ubyte", labels, compress)
