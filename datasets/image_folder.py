"""Your own images, no code: one folder per class, as torchvision's ``ImageFolder`` reads them.

    python -m benchmarks.run dataset=image_folder dataset.root=/data/birds backbone=conv4 method=protonet

Layouts under ``root`` (found by looking, not configured):

    root/<class>/<image>              classes only
    root/<group>/<class>/<image>      one level of groups above the classes (Omniglot's alphabets): class
                                      names are "<group>/<class>", and the groups drive group-disjoint splits

Images are files with the suffixes torchvision's ``ImageFolder`` accepts; other files are ignored. They are
read lazily (``datasets.image_files.ImageFiles``) through the evaluation transform in the config (size,
grey or colour, normalisation), and checked at load time (``verify_images``), so an unreadable image fails
before any training with its path named. An empty folder, or a class folder holding no image, is refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from datasets.dml import VerifyImages, check_images, default_transform
from datasets.errors import DatasetNotFoundError
from datasets.image_files import ImageFiles
from datasets.labeled import LabeledData

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolderError(ValueError):
    """The folder does not hold one folder of images per class; the message names what is wrong."""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_folder(root: str | Path, transform: Callable | None = None, verify_images: VerifyImages = "decode",
                 workers: int = 0, name: str | None = None) -> LabeledData:
    """The images under ``root`` (see the module's docstring) as lazy ``LabeledData``; ``name`` defaults to
    the folder's name."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root} is not a folder: give dataset.root=<a folder holding one folder of "
                                   "images per class>")
    top = _subfolders(root)
    if not top:
        raise ImageFolderError(f"{root} holds no class folders; put each class's images in root/<class>/ (or "
                               "root/<group>/<class>/)")
    grouped = all(not _images(folder) and _subfolders(folder) for folder in top)
    classes: list[tuple[str, Path, int | None]] = []  # (name, folder, group id)
    if grouped:
        for g, group in enumerate(top):
            classes += [(f"{group.name}/{c.name}", c, g) for c in _subfolders(group)]
    else:
        stray = [f.name for f in top if not _images(f) and _subfolders(f)]
        if stray:
            raise ImageFolderError(f"{root} mixes class folders with folders of folders ({', '.join(stray[:3])}); "
                                   "use one layout: root/<class>/<image> or root/<group>/<class>/<image>")
        classes = [(c.name, c, None) for c in top]
    paths, labels, groups = [], [], []
    for label, (class_name, folder, group) in enumerate(classes):
        found = _images(folder)
        if not found:
            raise ImageFolderError(f"{folder} (class {class_name}) holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                                   "add its images or remove the folder")
        paths += found
        labels += [label] * len(found)
        groups += [group] * len(found)
    check_images(paths, verify_images, workers)
    transform = default_transform(transform)
    x = ImageFiles(paths, transform, workers=workers)
    return LabeledData(x=x, y=torch.tensor(labels, dtype=torch.int64), classes=[c[0] for c in classes],
                       groups=torch.tensor(groups, dtype=torch.int64) if grouped else None, name=name or root.name)
