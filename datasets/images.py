"""Image files -> tensors, shared by the image loaders and by protocols that read images of their own
(the Omniglot one-shot runs), so that both see the very same preprocessing."""
from __future__ import annotations

import io
from typing import Iterable

import numpy as np
import torch
from torch import Tensor


def _resize_shape(image_size: int | Iterable[int] | None) -> tuple[int, int] | None:
    """None, an int (square) or (height, width)."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = (int(v) for v in image_size)
    return (h, w)


def decode_image(raw: bytes, where: str, image_size: int | Iterable[int] | None = 28,
                 invert: bool = True) -> Tensor:
    """One image file's bytes -> (1, H, W) float in [0, 1]; grey levels, optionally resized (bilinear,
    anti-aliased) and inverted. Shared by the loaders and the one-shot protocol, so both see the very
    same preprocessing."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as img:
            img = img.convert("L")
            shape = _resize_shape(image_size)
            if shape is not None and (img.height, img.width) != shape:
                img = img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{where} is not a readable image ({exc}); the file is corrupt: replace it") from exc
    x = torch.from_numpy(pixels.copy()).unsqueeze(0)
    return 1.0 - x if invert else x
