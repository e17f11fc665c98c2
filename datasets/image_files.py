"""A lazy array of image files: what ``LabeledData.x`` holds for data sets too big to decode at once.

CUB-200-2011 at 224x224 would be 7 GB as one float tensor, Stanford Online Products 72 GB. ``ImageFiles``
keeps the file paths and a transform (PIL image -> float tensor of a fixed shape) and decodes only what is
indexed, so the code written for tensors keeps working:

- ``x.shape`` is ``(n, C, H, W)``, from the transform's ``output_shape`` (or the first image's output);
- ``len(x)``; ``x[i]`` -> (C, H, W); ``x[i:j]``, ``x[LongTensor]``, ``x[list]`` -> (k, C, H, W), decoded
  now, on the array's device;
- ``x.to(device)`` -> a lazy copy whose decoded batches land on ``device`` (no image is read);
- ``x.subset(index)`` -> a lazy array of those files (``LabeledData.subset`` uses it);
- ``x.augmented(transform, seed)`` -> a lazy copy decoded through a random training transform
  (``datasets.transforms.TrainTransform``): every image of a batch gets its own generator, seeded from
  one generator the array owns, so the batches of a run are the same for the same seed and the same
  sequence of requests, whatever the number of decoding threads; ``x.plain()`` -> the copy without it.

``take(x, index)`` is the subset of either kind: lazy for ``ImageFiles``, ``x[index]`` for a tensor.
Protocols use it to pick test samples without decoding them all at once.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor


class ImageDecodeError(ValueError):
    """An image file cannot be read; the message names the file."""


def open_image(path: str | Path, reduce: int = 1):
    """The PIL image in ``path``, fully loaded; an unreadable file raises ``ImageDecodeError`` naming it.
    reduce: decode a JPEG at 1/``reduce`` of its size (PIL's draft mode, which still reads all its data;
    other formats ignore it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if reduce > 1:
                img.draft(img.mode, (max(1, img.width // reduce), max(1, img.height // reduce)))
            img.load()
            return img.copy()
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"{path} does not exist (it was there when the data set was loaded); "
                               "restore the file, or load the data set again") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{path} is not a readable image ({exc}); the file is corrupt or truncated: "
                               "replace it with a good copy (for a published data set, extract its archive again) or remove it") from exc


def check_header(path: str | Path) -> None:
    """Cheap load-time check: the file opens as an image (its header is read, its pixels are not)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{path} is not a readable image ({exc}); the file is corrupt: replace it with "
                               "a good copy (for a published data set, extract its archive again) or remove it") from exc


def check_decodes(path: str | Path) -> None:
    """Load-time check that reads the whole file: the image is decoded (a JPEG at 1/8 scale, which still
    reads every byte of its data), so a truncated file fails here, not during training."""
    open_image(path, reduce=8)


class ImageFiles:
    """Image files decoded on indexing through ``transform`` (PIL image -> float tensor (C, H, W)).

    item_shape: (C, H, W) of the transform's output; by default the transform's ``output_shape``
        attribute, else found by decoding the first file once.
    workers: threads decoding a batch (PIL releases the GIL while decoding and resizing); 0 or 1 decodes
        in the calling thread.
    """

    dtype = torch.float32

    def __init__(self, paths: Sequence[str | Path], transform: Callable, item_shape: Sequence[int] | None = None,
                 device: torch.device | str = "cpu", workers: int = 0) -> None:
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        self.transform = transform
        self.device = torch.device(device)
        self.workers = int(workers)
        self.augment: Callable | None = None     # (image, generator) -> tensor, set by augmented()
        self._rng: torch.Generator | None = None
        if item_shape is None:
            item_shape = getattr(transform, "output_shape", None)
        if item_shape is None:
            if not len(self.paths):
                raise ValueError("ImageFiles: no files and no item_shape; the shape of an image is unknown")
            item_shape = tuple(self._decode(self.paths[0]).shape)
        self.item_shape = tuple(int(s) for s in item_shape)

    # --- what tensor-like code reads
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), *self.item_shape))

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    def dim(self) -> int:
        return self.ndim

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        augment = "" if self.augment is None else f", augmented by {self.augment!r}"
        return f"ImageFiles({len(self)} files, item shape {self.item_shape}, device {self.device}{augment})"

    # --- decoding
    def _decode(self, path: str) -> Tensor:
        out = self.transform(open_image(path))
        if not isinstance(out, Tensor):
            raise TypeError(f"ImageFiles: the transform returned {type(out).__name__} for {path}, not a tensor; "
                            "end the transform with a conversion to a float tensor")
        return out

    def _checked(self, path: str, seed: int | None = None) -> Tensor:
        if seed is None:
            out = self._decode(path)
        else:
            out = self.augment(open_image(path), torch.Generator().manual_seed(seed))
        if tuple(out.shape) != self.item_shape:
            raise ValueError(f"{path} became a tensor of shape {tuple(out.shape)}, not {self.item_shape}; the "
                             "transform must give every image one size (resize + centre crop)")
        return out.to(self.dtype)

    def _positions(self, index) -> np.ndarray:
        n = len(self.paths)
        if isinstance(index, slice):
            return np.arange(n)[index]
        if isinstance(index, Tensor):
            index = index.detach().cpu()
            if index.dtype == torch.bool:
                if index.shape != (n,):
                    raise IndexError(f"ImageFiles: a mask of shape {tuple(index.shape)} for {n} files")
                index = torch.nonzero(index).flatten()
            elif index.dtype.is_floating_point:
                raise IndexError("ImageFiles: index with integers, not floats")
            index = index.numpy()
        positions = np.asarray(index)
        if positions.dtype == bool:
            positions = np.nonzero(positions)[0]
        if positions.ndim != 1 or (positions.size and not np.issubdtype(positions.dtype, np.integer)):
            raise IndexError(f"ImageFiles: index with an int, a slice or a 1-d integer sequence, not {index!r}")
        if positions.size and (positions.min() < -n or positions.max() >= n):
            raise IndexError(f"ImageFiles: index out of range for {n} files")
        return np.where(positions < 0, positions + n, positions).astype(np.int64)

    def __getitem__(self, index) -> Tensor:
        if isinstance(index, (int, np.integer)) or (isinstance(index, Tensor) and index.dim() == 0):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"ImageFiles: index {i} out of range for {len(self)} files")
            return self._checked(self.paths[i], *self._seeds(1)).to(self.device)
        paths = self.paths[self._positions(index)]
        if not len(paths):
            return torch.empty((0, *self.item_shape), dtype=self.dtype, device=self.device)
        seeds = self._seeds(len(paths))  # drawn here, in order, before any thread starts
        if self.workers > 1 and len(paths) > 1:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                images = list(pool.map(self._checked, paths, seeds))
        else:
            images = [self._checked(p, s) for p, s in zip(paths, seeds)]
        return torch.stack(images).to(self.device)

    def _seeds(self, n: int) -> list:
        """One generator seed per image to decode when augmenting, else None for each."""
        if self.augment is None:
            return [None] * n
        return torch.randint(0, 2 ** 62, (n,), generator=self._rng).tolist()

    # --- lazy copies
    def _copy(self, paths: np.ndarray, device: torch.device) -> "ImageFiles":
        new = object.__new__(ImageFiles)
        new.paths, new.transform, new.device = paths, self.transform, device
        new.workers, new.item_shape = self.workers, self.item_shape
        new.augment, new._rng = self.augment, self._rng  # a subset draws from the same stream
        return new

    def augmented(self, transform: Callable, seed: int) -> "ImageFiles":
        """A lazy copy decoded through ``transform(image, generator)`` (a random training transform with an
        ``output_shape`` equal to this array's item shape), its randomness seeded by ``seed``."""
        shape = getattr(transform, "output_shape", None)
        if shape is not None and tuple(shape) != self.item_shape:
            raise ValueError(f"the training transform gives images of shape {tuple(shape)} but the data set's "
                             f"transform gives {self.item_shape}; give both the same crop (and grey setting)")
        new = self._copy(self.paths, self.device)
        new.augment, new._rng = transform, torch.Generator().manual_seed(int(seed))
        return new

    def plain(self) -> "ImageFiles":
        """A lazy copy decoded through the data set's own (evaluation) transform only (this array itself
        when it is not augmented)."""
        if self.augment is None:
            return self
        new = self._copy(self.paths, self.device)
        new.augment, new._rng = None, None
        return new

    def to(self, device: torch.device | str, *args, **kwargs) -> "ImageFiles":
        """A lazy copy that puts decoded batches on ``device`` (extra arguments, e.g. non_blocking, are
        accepted for a tensor's signature and ignored)."""
        return self._copy(self.paths, torch.device(device))

    def cpu(self) -> "ImageFiles":
        return self.to("cpu")

    def subset(self, index) -> "ImageFiles":
        """The files at ``index`` (any index ``__getitem__`` takes), as a lazy array; nothing is decoded."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return self._copy(self.paths[self._positions(index)], self.device)


def without_augmentation(x):
    """``x`` as its evaluation transform decodes it: ``x.plain()`` for an augmented ``ImageFiles``, ``x``
    itself otherwise (a tensor). For what a learner computes on its training data that is not a training
    step (e.g. the features it clusters)."""
    plain = getattr(x, "plain", None)
    return plain() if callable(plain) else x


def take(x, index):
    """``x[index]`` without decoding: the lazy subset of an ``ImageFiles``, the indexed tensor otherwise."""
    subset = getattr(x, "subset", None)
    return subset(index) if callable(subset) else x[index]
