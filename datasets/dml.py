"""What the deep-metric-learning image sets share (CUB-200-2011, Cars196, Stanford Online Products,
In-shop): reading their whitespace-separated annotation files with errors that name the file and line,
and turning (image path, class, published partition) rows into a ``LabeledData`` whose inputs are a lazy
``ImageFiles`` array, after checking at load time that every image the annotations name exists.

Class ids in the files become labels 0..C-1 in sorted order of the ids; ``partition`` holds the published
split (``datasets.labeled.TRAIN`` / ``TEST`` / ``GALLERY``), read by ``datasets.splits.PublishedSplit``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Literal, Sequence, Union, get_args

import torch

from datasets.errors import DatasetNotFoundError
from datasets.image_files import ImageFiles, check_decodes, check_header
from datasets.labeled import LabeledData


class AnnotationError(ValueError):
    """An annotation file is malformed or names something that is not there."""


def folder_holding(root: str | Path, folder: str | None, marker: str) -> Path | None:
    """``root/folder`` when it holds ``marker``, else ``root`` itself when it does (the user pointed at the
    data set's own folder), else None."""
    root = Path(root)
    for candidate in ([root / folder] if folder else []) + [root]:
        if (candidate / marker).exists():
            return candidate
    return None


def read_rows(path: Path, n_columns: int, skip: int = 0, fix: str = "") -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty line after the first ``skip``, split on whitespace into
    exactly ``n_columns`` fields (the last one keeps any spaces). A missing file or a bad line raises
    ``AnnotationError`` naming the file, the line and ``fix``."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} is missing; it is one of the annotation files the data set is "
                                   f"published with. {fix}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path} cannot be read as text ({exc}); replace it with the published copy. "
                              f"{fix}") from exc
    rows = []
    for number, line in enumerate(text.splitlines()[skip:], start=skip + 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=n_columns - 1)
        if len(fields) != n_columns:
            raise AnnotationError(f"{path} line {number} has {len(fields)} field(s), expected {n_columns}: "
                                  f"{line.strip()!r}; the file is damaged: replace it with the published copy. {fix}")
        rows.append((number, fields))
    if not rows:
        raise AnnotationError(f"{path} holds no entries; replace it with the published copy. {fix}")
    return rows


def to_int(value: str, path: Path, number: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise AnnotationError(f"{path} line {number}: {what} {value!r} is not an integer; the file is damaged: "
                              "replace it with the published copy") from None


def labels_for(ids: Sequence) -> tuple[list, torch.Tensor]:
    """The distinct ids in sorted order and each sample's position among them (int64)."""
    distinct = sorted(set(ids))
    position = {v: i for i, v in enumerate(distinct)}
    return distinct, torch.tensor([position[v] for v in ids], dtype=torch.int64)


def image_data(folder: Path, relative_paths: Sequence[str], labels: torch.Tensor, classes: list[str],
               partition: Sequence[int], transform: Callable, name: str, listed_in: str, fix: str,
               groups: torch.Tensor | None = None, verify_images: VerifyImages = "decode",
               workers: int = 0) -> LabeledData:
    """A ``LabeledData`` of the images ``folder/relative_paths`` (lazy ``ImageFiles``). Every file must
    exist (checked now, so that a missing image fails before training); ``verify_images`` (see
    ``check_images``) also opens or decodes each one now. ``listed_in``: the annotation file that names
    the images, and ``fix``: how to restore them, for the errors."""
    paths = [folder / p for p in relative_paths]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DatasetNotFoundError(f"{name}: {listed_in} names {len(missing)} image(s) that are not there: {shown}. "
                                   f"The images are incomplete. {fix}")
    check_images(paths, verify_images, workers)
    x = ImageFiles(paths, transform, workers=workers)
    return LabeledData(x=x, y=labels, classes=list(classes), groups=groups, name=name,
                       partition=torch.as_tensor(list(partition), dtype=torch.int64))


VerifyMode = Literal["none", "header", "decode"]
VERIFY_MODES = get_args(VerifyMode)
VerifyImages = Union[bool, VerifyMode]  # a loader's verify_images: a mode, true ("decode") or false ("none")


def check_images(paths: Sequence[Path], mode: bool | str, workers: int = 0) -> None:
    """The load-time check of the image files, before any training: ``"decode"`` (or True) decodes every
    image (JPEGs at 1/8 scale, which still reads all their data: a truncated file fails; 1-4 ms a file, on
    ``workers`` threads), ``"header"`` only opens each file's header (a file that is not an image or has
    a damaged header; ~0.1 ms a file), ``"none"`` (or False) checks nothing beyond existence. The first
    bad file raises ``ImageDecodeError`` naming it."""
    mode = verify_mode(mode)
    if mode != "none":
        check_all(check_header if mode == "header" else check_decodes, paths, workers)


def verify_mode(mode: bool | str) -> str:
    """``verify_images`` as one of VERIFY_MODES (True: "decode", False: "none"); anything else is refused."""
    mode = {True: "decode", False: "none"}[mode] if isinstance(mode, bool) else str(mode)
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify_images must be one of {', '.join(VERIFY_MODES)} (or true/false), got {mode!r}")
    return mode


def check_all(check: Callable, items: Sequence, workers: int = 0) -> None:
    """``check`` each item, on ``workers`` threads when more than one; the first failure raises."""
    if workers > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(check, items):
                pass
    else:
        for item in items:
            check(item)


def default_transform(transform: Callable | None) -> Callable:
    """The transform given, or the DML evaluation transform (256 resize, 224 centre crop, ImageNet)."""
    if transform is not None:
        return transform
    from datasets.transforms import EvalTransform

    return EvalTransform()
