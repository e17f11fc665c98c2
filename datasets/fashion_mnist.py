"""Fashion-MNIST from its IDX files.

Where the files are looked for, in order:
1. ``root`` given in config (``dataset.source.root=/path``), a folder holding the four IDX files (.gz or not);
2. ``/usr/share/datasets/fashion-mnist/``, where Debian's ``dataset-fashion-mnist`` package puts them;
3. torchvision's download into ``download_root`` when ``dataset.source.download=true`` and the machine is online.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from datasets.errors import DatasetNotFoundError
from datasets.labeled import LabeledData

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} cannot be read ({exc}); the file is corrupt: replace it "
                         "(reinstall dataset-fashion-mnist, or download it again)") from exc
    if len(raw) < 4:
        raise ValueError(f"{path} is not an IDX file (too short)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {raw[:4].hex()})")
    shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _folder_with_files(folder: Path) -> bool:
    return all(_find(folder, stem) for pair in FILES.values() for stem in pair)


def locate(root: str | None, download: bool, download_root: str) -> Path:
    """Return the folder holding the IDX files, or raise one error naming the three ways to get them."""
    if root is not None:
        if _folder_with_files(Path(root)):
            return Path(root)
        raise DatasetNotFoundError(
            f"Fashion-MNIST: dataset.source.root={root} does not hold the four IDX files "
            f"({', '.join(s for p in FILES.values() for s in p)}, .gz or not). "
            "Point dataset.source.root at the right folder, or leave it unset to use "
            f"{DEBIAN_DIR} (apt-get install -y dataset-fashion-mnist) or dataset.source.download=true."
        )
    if _folder_with_files(DEBIAN_DIR):
        return DEBIAN_DIR
    raw_dir = Path(download_root) / "FashionMNIST" / "raw"
    if _folder_with_files(raw_dir):
        return raw_dir
    if download:
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(root=download_root, train=True, download=True)
            FashionMNIST(root=download_root, train=False, download=True)
        except Exception as exc:  # network errors come in many types
            raise DatasetNotFoundError(
                f"Fashion-MNIST: torchvision's download into {download_root} failed ({exc}). "
                "Provide the files another way: dataset.source.root=<folder with the IDX files>, or "
                "apt-get install -y dataset-fashion-mnist."
            ) from exc
        return raw_dir
    raise DatasetNotFoundError(
        "Fashion-MNIST was not found. Provide it in one of three ways: "
        "(1) dataset.source.root=<folder holding train-images-idx3-ubyte[.gz] and the other three IDX files>; "
        f"(2) apt-get install -y dataset-fashion-mnist, which puts them in {DEBIAN_DIR}; "
        f"(3) dataset.source.download=true to let torchvision download them into {download_root} (needs the internet)."
    )


def fashion_mnist(root: str | None = None, download: bool = False, download_root: str = "data",
                  parts: tuple[str, ...] = ("train", "test"), max_per_class: int | None = None) -> LabeledData:
    """Fashion-MNIST images as (n, 1, 28, 28) floats in [0, 1].

    ``parts`` picks the official train and/or test files (they are pooled: the suite makes its own
    class-disjoint splits). ``max_per_class`` keeps the first N images of each class, in file order.
    """
    folder = locate(root, download, download_root)
    xs, ys = [], []
    for part in parts:
        if part not in FILES:
            raise ValueError(f"Fashion-MNIST: unknown part {part!r}; use 'train' and/or 'test'")
        image_stem, label_stem = FILES[part]
        xs.append(read_idx(_find(folder, image_stem)))
        ys.append(read_idx(_find(folder, label_stem)))
    x = torch.from_numpy(np.concatenate(xs)).float().div_(255.0).unsqueeze(1)
    y = torch.from_numpy(np.concatenate(ys).astype(np.int64))
    if len(x) != len(y):
        raise ValueError(f"Fashion-MNIST in {folder}: {len(x)} images but {len(y)} labels")
    if max_per_class is not None:
        keep = torch.cat([torch.nonzero(y == c).flatten()[:max_per_class] for c in range(len(CLASSES))])
        keep, _ = torch.sort(keep)
        x, y = x[keep], y[keep]
    return LabeledData(x=x, y=y, classes=list(CLASSES), name="fashion_mnist")
