"""miniImageNet (Vinyals et al. 2016) with the class split of Ravi & Larochelle (2017), read lazily from a
local copy in either of its published layouts:

- the usual distribution: ``train.csv``, ``val.csv``, ``test.csv`` (header ``filename,label``; the label is
  an ImageNet synset such as ``n01532829``) and ``images/<filename>`` (84x84 JPEGs);
- class folders: ``train/<synset>/<file>``, ``val/<synset>/<file>``, ``test/<synset>/<file>`` (.jpg, .jpeg
  or .png; other files are ignored).

The folder read is ``root`` itself, or its sub-folder ``miniImageNet``, ``mini-imagenet`` or
``mini_imagenet``, whichever holds a layout. The published split has 64 training, 16 validation and 20
test classes of 600 images each (60,000 images); the loader reads whatever the copy holds and does not
insist on those counts.

``partition`` holds the published split: the training classes ``TRAIN``, the test classes ``TEST``
(``protocol=fewshot_published``: train on the 64, test N-way episodes on the 20). The validation classes
follow ``val_classes``: ``"drop"`` (default: left out, and their files are not read), ``"train"`` (they
join the training side, as in methods that train on train+val) or ``"test"`` (they join the test side).
Classes are numbered training first, then validation (when kept), then test, each in sorted order of
their synsets; ``groups`` is None (miniImageNet has no published super-categories).

There is no download: ImageNet's terms of access do not allow redistributing its images, so a copy has to
be made from the user's own ILSVRC-2012 training images, or obtained where the user is entitled to it.

The helpers for the published few-shot splits (which splits a ``val_classes`` setting reads, the class
folders layout, labels and partition from (split, class) pairs) are shared with
``datasets.tiered_imagenet``.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, get_args

import torch

from datasets.dml import AnnotationError, VerifyImages, image_data
from datasets.errors import DatasetNotFoundError
from datasets.labeled import TEST, TRAIN, LabeledData

SPLITS = ("train", "val", "test")
ValClasses = Literal["drop", "train", "test"]  # what becomes of the published validation classes
VAL_CLASSES = get_args(ValClasses)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SUBFOLDERS = ("miniImageNet", "mini-imagenet", "mini_imagenet")
HOW_TO = ("Provide miniImageNet in one of three ways: (1) put a copy in that folder in one of its published layouts: "
          "train.csv, val.csv and test.csv (Ravi & Larochelle's split, header filename,label) with images/ holding "
          "the 84x84 JPEGs they name, or the folders train/, val/ and test/ with one sub-folder of images per "
          "synset; (2) point dataset.source.root (or the data root: data_root=<folder> / SIMBENCH_DATA_ROOT, read as "
          "<data root>/mini-imagenet) at the folder that holds such a copy; (3) make the copy from your own "
          "ILSVRC-2012 training images with a script that follows the published csv files. There is no download: "
          "ImageNet's terms of access do not allow redistributing its images.")


# ----------------------------------------------------------------------- shared by the few-shot image sets

def used_splits(val_classes: str, who: str) -> tuple[str, ...]:
    """The published splits a ``val_classes`` setting reads: train and test, and val unless it is dropped."""
    if val_classes not in VAL_CLASSES:
        raise ValueError(f"{who}: val_classes must be one of {', '.join(VAL_CLASSES)} (what becomes of the published "
                         f"validation classes: left out, training classes, or test classes), got {val_classes!r}")
    return ("train", "test") if val_classes == "drop" else SPLITS


def partition_of(split: str, val_classes: str) -> int:
    """``TRAIN`` or ``TEST`` for a sample of the published ``split``."""
    if split == "val":
        return TRAIN if val_classes == "train" else TEST
    return TRAIN if split == "train" else TEST


def first_holding(root: Path, subfolders: Sequence[str], present: Callable[[Path], bool]) -> Path | None:
    """``root`` when ``present(root)``, else the first of its ``subfolders`` that is, else None."""
    for candidate in [root] + [root / name for name in subfolders]:
        if present(candidate):
            return candidate
    return None


def has_split_folders(folder: Path, splits: Sequence[str]) -> bool:
    return all((folder / split).is_dir() for split in splits)


def read_class_folders(folder: Path, splits: Sequence[str], who: str, fix: str) -> list[tuple[str, str, str]]:
    """(split, class folder name, path relative to ``folder``) of every image in ``folder/<split>/<class>/``,
    in sorted order; a split without class folders or a class folder without images raises
    ``AnnotationError`` naming it."""
    entries = []
    for split in splits:
        base = folder / split
        if not base.is_dir():
            raise DatasetNotFoundError(f"{who}: {base} is missing; the class-folder layout has train/, val/ and test/ "
                                       f"beside each other (val/ is read when val_classes is train or test). {fix}")
        class_dirs = sorted(p for p in base.iterdir() if p.is_dir())
        if not class_dirs:
            raise AnnotationError(f"{who}: {base} holds no class folders (one sub-folder of images per class is "
                                  f"expected). {fix}")
        for class_dir in class_dirs:
            files = sorted(p.name for p in class_dir.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise AnnotationError(f"{who}: the class folder {class_dir} holds no images "
                                      f"({', '.join(IMAGE_SUFFIXES)}). {fix}")
            entries += [(split, class_dir.name, f"{split}/{class_dir.name}/{name}") for name in files]
    return entries


def published_labels(splits: Sequence[str], classes: Sequence[str], val_classes: str, who: str,
                     where: str) -> tuple[torch.Tensor, list[str], list[int]]:
    """Per sample (its published split, its class name): the labels (int64), the class names (training
    classes first, then validation, then test, each sorted) and the partition values. The published
    splits are class-disjoint: a class found in two splits raises ``AnnotationError`` (``where``: the files
    that say so)."""
    split_of: dict[str, str] = {}
    for split, name in zip(splits, classes):
        seen = split_of.setdefault(name, split)
        if seen != split:
            raise AnnotationError(f"{who}: class {name!r} is in both the {seen} and the {split} split ({where}); the "
                                  "published splits are class-disjoint, so the copy is mixed up: restore the published "
                                  "files")
    order = sorted(split_of, key=lambda name: (SPLITS.index(split_of[name]), name))
    position = {name: i for i, name in enumerate(order)}
    y = torch.tensor([position[name] for name in classes], dtype=torch.int64)
    return y, order, [partition_of(split, val_classes) for split in splits]


# ------------------------------------------------------------------------------------------ miniImageNet

def _csv_layout(folder: Path) -> bool:
    return (folder / "train.csv").is_file() and (folder / "test.csv").is_file()


def _present(folder: Path) -> bool:
    return _csv_layout(folder) or has_split_folders(folder, ("train", "test"))


def read_split_csv(path: Path, fix: str) -> list[tuple[int, str, str]]:
    """(line number, filename, label) of each row of a miniImageNet split file (header ``filename,label``)."""
    if not path.is_file():
        raise DatasetNotFoundError(f"miniImageNet: {path} is missing; the csv layout has train.csv, val.csv and "
                                   f"test.csv beside images/ (val.csv is read when val_classes is train or test). {fix}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path} cannot be read as text ({exc}); replace it with the published copy. {fix}") from exc
    if not lines:
        raise AnnotationError(f"{path} is empty; replace it with the published copy. {fix}")
    rows = list(csv.reader(lines))
    if [field.strip().lower() for field in rows[0]] != ["filename", "label"]:
        raise AnnotationError(f"{path} line 1 is {lines[0].strip()!r}, not the header 'filename,label' of the "
                              f"published split files; replace it with the published copy. {fix}")
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise AnnotationError(f"{path} line {number} is {','.join(row)!r}, not '<filename>,<synset>'; the file is "
                                  f"damaged: replace it with the published copy. {fix}")
        out.append((number, row[0].strip(), row[1].strip()))
    if not out:
        raise AnnotationError(f"{path} lists no images; replace it with the published copy. {fix}")
    return out


def _csv_entries(folder: Path, splits: Sequence[str], fix: str) -> list[tuple[str, str, str]]:
    images = folder / "images"
    if not images.is_dir():
        raise DatasetNotFoundError(f"miniImageNet: {folder} holds the split files but no images/ folder; the csv "
                                   f"layout keeps the images the csv files name in images/. {fix}")
    entries, listed = [], {}
    for split in splits:
        path = folder / f"{split}.csv"
        rows = read_split_csv(path, fix)
        for number, filename, label in rows:
            if filename in listed:
                raise AnnotationError(f"{path} line {number} lists {filename}, which {listed[filename]} lists "
                                      f"already; the split files are damaged: replace them with the published copies")
            listed[filename] = f"{path.name} line {number}"
        missing = [filename for _, filename, _ in rows if not (images / filename).is_file()]
        if missing:
            shown = ", ".join(str(images / m) for m in missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise DatasetNotFoundError(f"miniImageNet: {path} names {len(missing)} image(s) that are not in {images}: "
                                       f"{shown}. The images are incomplete. {fix}")
        entries += [(split, label, f"images/{filename}") for _, filename, label in rows]
    return entries


def mini_imagenet(root: str | Path, transform: Callable | None = None, val_classes: ValClasses = "drop",
                  verify_images: VerifyImages = "decode", workers: int = 0) -> LabeledData:
    """miniImageNet from ``root`` as lazy images; ``partition`` is the published split (see the module
    docstring).

    transform: PIL image -> tensor (default: ``EvalTransform(resize=84, crop=84)``, ImageNet statistics).
    val_classes: "drop" (default), "train" or "test": what becomes of the 16 validation classes.
    verify_images: the load-time image check, "decode" (default), "header" or "none"
    (``datasets.dml.check_images``). workers: decoding threads.
    """
    splits = used_splits(val_classes, "miniImageNet")
    root = Path(root)
    folder = first_holding(root, SUBFOLDERS, _present)
    if folder is None:
        raise DatasetNotFoundError(f"miniImageNet: {root} holds neither train.csv + test.csv (with images/) nor the "
                                   f"folders train/ and test/ (nor does a sub-folder {', '.join(SUBFOLDERS)}). {HOW_TO}")
    if _csv_layout(folder):
        fix = (f"Copy the miniImageNet images again into {folder / 'images'} (the 84x84 JPEGs the csv files name), "
               "or make them again from ILSVRC-2012 following the csv files.")
        entries = _csv_entries(folder, splits, fix)
        listed_in, where = f"{folder}/{{{','.join(splits)}}}.csv", "the csv files"
    else:
        fix = f"Copy the miniImageNet class folders into {folder} again (train/, val/, test/, one folder per synset)."
        entries = read_class_folders(folder, splits, "miniImageNet", fix)
        listed_in, where = f"the class folders of {folder}", "the class folders"
    y, classes, partition = published_labels([e[0] for e in entries], [e[1] for e in entries], val_classes,
                                             "miniImageNet", where)
    return image_data(folder, [e[2] for e in entries], y, classes, partition, fewshot_transform(transform),
                      name="mini_imagenet", listed_in=listed_in, fix=fix, verify_images=verify_images, workers=workers)


def fewshot_transform(transform: Callable | None) -> Callable:
    """The transform given, or the few-shot one: shorter side 84, centre crop 84, ImageNet statistics."""
    if transform is not None:
        return transform
    from datasets.transforms import EvalTransform

    return EvalTransform(resize=84, crop=84)
