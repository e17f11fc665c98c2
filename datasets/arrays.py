"""Your own data as arrays, no code: a ``.npz`` or a ``.csv`` file.

    python -m benchmarks.run dataset=arrays dataset.path=mine.npz method=lmnn protocol=knn
    python -m benchmarks.run dataset=arrays dataset.path=mine.csv dataset.source.label_column=species

``.npz``: ``x`` (vectors ``(n, d)``, grey images ``(n, H, W)`` or images ``(n, C, H, W)``), ``y`` (one label
per sample: integers or strings), optionally ``groups`` (one per sample, for group-disjoint splits) and
``class_names`` (names for integer labels 0..k-1). ``.csv``: one row per sample, the label in the column
``label_column``, optionally a group column, every other column a numeric feature.

Everything is checked when the file is read, before any training, and a bad file raises
``ArrayFileError`` naming the file, the problem and the fix.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from datasets.errors import DatasetNotFoundError
from datasets.labeled import LabeledData


class ArrayFileError(ValueError):
    """An array file cannot be used as a data set; the message names the file and the fix."""


def arrays(path: str | Path, label_column: str = "label", group_column: str | None = None,
           name: str | None = None) -> LabeledData:
    """The data set in ``path`` (``.npz`` or ``.csv``, see the module's docstring); ``name`` defaults to the
    file's stem."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} does not exist: give dataset.path=<a .npz or .csv file> (absolute, or "
                                   "relative to the folder the run starts in)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        x, y, groups, class_names = _read_npz(path)
    elif suffix == ".csv":
        x, y, groups = _read_csv(path, label_column, group_column)
        class_names = None
    else:
        kind = suffix or "a file without a suffix"
        raise ArrayFileError(f"{path}: dataset=arrays reads .npz or .csv files, not {kind}; save x and y with "
                             "numpy.savez, or write a csv with a label column")
    return _labeled(path, x, y, groups, class_names, name or path.stem)


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = {k: archive[k] for k in archive.files}
    except ValueError as exc:  # object arrays need pickle, which is refused (a pickle can run code)
        raise ArrayFileError(f"{path}: an array holds Python objects ({exc}); store numbers, and labels or "
                             "names as numpy string arrays (np.array(names, dtype=str))") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ArrayFileError(f"{path} is not a readable .npz file ({exc}); write it again with numpy.savez") from None
    missing = [k for k in ("x", "y") if k not in found]
    if missing:
        raise ArrayFileError(f"{path} has no array named {' or '.join(missing)} (it holds {sorted(found) or 'none'}); "
                             "save the inputs as x and the labels as y: numpy.savez(path, x=..., y=...)")
    return found["x"], found["y"], found.get("groups"), found.get("class_names")


def _read_csv(path: Path, label_column: str, group_column: str | None):
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ArrayFileError(f"{path} is not a readable csv file ({exc}); write one row per sample with a header "
                             "row") from None
    for role, column in (("label", label_column), ("group", group_column)):
        if column is not None and column not in frame.columns:
            raise ArrayFileError(f"{path} has no column {column!r} for the {role}s (its columns: "
                                 f"{', '.join(map(str, frame.columns))}); set dataset.source.{role}_column=<name>")
    features = frame.drop(columns=[c for c in (label_column, group_column) if c is not None])
    text = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        raise ArrayFileError(f"{path}: feature column(s) {', '.join(text[:5])} are not numeric; every column but the "
                             f"label ({label_column!r}) must be a number: drop or encode them")
    if features.shape[1] == 0:
        raise ArrayFileError(f"{path} has no feature columns besides the label {label_column!r}")
    groups = None if group_column is None else frame[group_column].to_numpy()
    return features.to_numpy(dtype=np.float64), frame[label_column].to_numpy(), groups


def _ids(values: np.ndarray, path: Path, what: str) -> tuple[torch.Tensor, list[str]]:
    """Labels (or groups) as int64 ids in sorted order of the distinct values, and those values as names."""
    values = np.asarray(values)
    if values.dtype.kind == "O":  # text read from a csv (pandas gives its strings as Python objects)
        if not all(isinstance(v, str) for v in values.ravel()):
            raise ArrayFileError(f"{path}: the {what} must be integers or strings; found missing values or a mix "
                                 "of text and numbers: give every row one, as text or as a whole number")
        values = values.astype(str)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.all(values == np.round(values)):
            raise ArrayFileError(f"{path}: the {what} must be integers or strings; found non-integer or missing "
                                 "values")
        values = values.astype(np.int64)
    if values.dtype.kind not in "iuUS":
        raise ArrayFileError(f"{path}: the {what} must be integers or strings, not {values.dtype}")
    distinct, ids = np.unique(values, return_inverse=True)
    return torch.as_tensor(ids.reshape(-1), dtype=torch.int64), [str(v) for v in distinct]


def _labeled(path: Path, x, y, groups, class_names, name: str) -> LabeledData:
    x = np.asarray(x)
    if x.dtype.kind not in "iuf" or x.ndim not in (2, 3, 4):
        raise ArrayFileError(f"{path}: x must be numbers shaped (n, features), (n, height, width) or "
                             f"(n, channels, height, width); it is {x.dtype} shaped {x.shape}")
    y = np.asarray(y).reshape(-1) if np.ndim(y) else np.asarray(y)
    if len(x) != len(y):
        raise ArrayFileError(f"{path}: x has {len(x)} samples but y has {len(y)} labels; give one label per sample")
    if len(x) == 0:
        raise ArrayFileError(f"{path} holds no samples")
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        rows = np.nonzero(bad)[0]
        raise ArrayFileError(f"{path}: {len(rows)} sample(s) have NaN or infinite features (the first: sample "
                             f"{rows[0]}); remove them or fill the missing values before running")
    labels, names = _ids(y, path, "labels (y)")
    if class_names is not None:
        class_names = [str(c) for c in np.asarray(class_names).reshape(-1)]
        if np.asarray(y).dtype.kind not in "iu" or int(np.max(y)) >= len(class_names) or int(np.min(y)) < 0:
            raise ArrayFileError(f"{path}: class_names gives {len(class_names)} names, so y must hold integers "
                                 f"0..{len(class_names) - 1}")
        labels, names = torch.as_tensor(np.asarray(y), dtype=torch.int64), class_names
    if len(torch.unique(labels)) < 2:
        raise ArrayFileError(f"{path}: every sample has the same label; a metric needs at least 2 classes")
    group_ids = None
    if groups is not None:
        groups = np.asarray(groups).reshape(-1)
        if len(groups) != len(x):
            raise ArrayFileError(f"{path}: groups has {len(groups)} entries for {len(x)} samples; give one per sample")
        group_ids, _ = _ids(groups, path, "groups")
    inputs = torch.as_tensor(x, dtype=torch.float32)
    if inputs.ndim == 3:  # grey images: one channel
        inputs = inputs.unsqueeze(1)
    return LabeledData(x=inputs, y=labels, classes=names, groups=group_ids, name=name)
