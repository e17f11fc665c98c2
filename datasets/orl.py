"""The ORL (AT&T) face database: 40 subjects x 10 grey images of 92x112 (width x height), as binary PGM.

Layout under ``root`` (by default ``${data_root}/att_faces``): ``sN/M.pgm``, N = 1..40, M = 1..10.
Classes are the subjects ``"s1"`` .. ``"s40"`` (in numeric order); images become (n, 1, H, W) floats in
[0, 1], 112x92 unless ``image_size`` resizes them. There is no maintained download address; the files
come from the original distribution (Olivetti Research Laboratory, credit required).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import torch

from datasets.errors import DatasetNotFoundError
from datasets.images import decode_image
from datasets.labeled import LabeledData

_SUBJECT = re.compile(r"^s(\d+)$")
_IMAGE = re.compile(r"^(\d+)\.pgm$")


def _numbered(folder: Path, pattern: re.Pattern, want_dir: bool) -> list[tuple[int, Path]]:
    found = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and (entry.is_dir() if want_dir else entry.is_file()):
            found.append((int(match.group(1)), entry))
    return sorted(found)


def orl(root: str | Path, image_size: int | Iterable[int] | None = None,
        max_per_class: int | None = None) -> LabeledData:
    """ORL faces from ``root``/sN/M.pgm. image_size: None (112x92), an int (square) or (height, width)."""
    folder = Path(root)
    subjects = _numbered(folder, _SUBJECT, want_dir=True) if folder.is_dir() else []
    if not subjects:
        raise DatasetNotFoundError(
            f"ORL faces: {folder} holds no subject folders s1 .. s40 with 1.pgm .. 10.pgm in each. "
            "Provide them in one of two ways: (1) point the data root at a folder holding att_faces/: "
            "data_root=<folder> or the environment variable SIMBENCH_DATA_ROOT; (2) dataset.source.root=<the "
            "att_faces folder itself>. The files come from the AT&T/ORL distribution (att_faces.zip), unpacked as is."
        )
    images, labels, classes = [], [], []
    for label, (number, subject_dir) in enumerate(subjects):
        files = _numbered(subject_dir, _IMAGE, want_dir=False)[:max_per_class]
        if not files:
            raise ValueError(f"ORL faces: {subject_dir} holds no M.pgm images")
        classes.append(f"s{number}")
        for _, path in files:
            images.append(decode_image(path.read_bytes(), str(path), image_size, invert=False))
            labels.append(label)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise ValueError(f"ORL faces in {folder}: images of different sizes {sorted(shapes)}; "
                         "set dataset.source.image_size")
    return LabeledData(x=torch.stack(images), y=torch.tensor(labels, dtype=torch.int64), classes=classes,
                       name="orl")
