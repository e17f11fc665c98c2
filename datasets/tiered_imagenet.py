"""tieredImageNet (Ren et al. 2018): 608 ImageNet classes in 34 super-categories, split by category into
351 training classes (20 categories), 97 validation (6) and 160 test (8), read from a local copy in either
of two layouts:

- the pickles of Ren et al.'s distribution (``tiered-imagenet.tar``, extracted): per split ``<split>_images_png.pkl``,
  a list of PNG-encoded 84x84 images (byte strings, or uint8 arrays as ``cv2.imencode`` gives them), and
  ``<split>_labels.pkl``, a dict with ``label_specific`` (class index per image), ``label_general``
  (category index per image), ``label_specific_str`` and ``label_general_str`` (their names). Pickles
  written by Python 2 are read too. Only numpy arrays, lists, dicts, numbers and strings are unpickled:
  a pickle that asks for anything else is refused (unpickling can run code);
- class folders: ``train/<synset>/<file>``, ``val/<synset>/<file>``, ``test/<synset>/<file>``.

The folder read is ``root`` itself, or its sub-folder ``tiered-imagenet`` or ``tiered_imagenet``; a
``tiered-imagenet.tar`` in ``root`` is extracted first when no layout is there (no checksum is published).

Images stay lazy in both layouts: the folder layout is an ``ImageFiles`` array of the files, like CUB;
the pickle layout keeps the PNG byte strings in memory (the pickles' size: the images are not decoded at
load time, which for the 448,695 training images would take 38 GB as floats) and decodes each batch when
it is indexed (``EncodedImages``). The default transform is ``EvalTransform(resize=84, crop=84)``.

``partition``: the training classes ``TRAIN``, the test classes ``TEST``, the validation classes as
``val_classes`` says (``"drop"``, default: left out and not read; ``"train"``; ``"test"``). Classes are
numbered training first, then validation, then test, each sorted by name. ``groups`` are the
super-categories: in the pickle layout from ``label_general`` (class names ``"<category>/<class>"``, so
``datasets.group_split.group_names`` names the groups); in the folder layout from Ren et al.'s split files
(``train.csv``, ``val.csv``, ``test.csv``, rows ``<synset>,<category synset>``, no header) when they are in
the folder or in its ``tiered_imagenet_split/`` sub-folder, else None.

There is no download: ImageNet's terms of access do not allow redistributing its images.
"""
from __future__ import annotations

import csv
import importlib
import io
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from datasets.archives import Archive, provide
from datasets.dml import AnnotationError, VerifyImages, check_all, image_data, verify_mode
from datasets.errors import DatasetNotFoundError
from datasets.image_files import ImageDecodeError, ImageFiles
from datasets.labeled import LabeledData
from datasets.mini_imagenet import (
    ValClasses,
    fewshot_transform,
    first_holding,
    has_split_folders,
    published_labels,
    read_class_folders,
    used_splits,
)

ARCHIVE = Archive("tiered-imagenet.tar")  # Ren et al.'s distribution; no checksum is published
SUBFOLDERS = ("tiered-imagenet", "tiered_imagenet")
Layout = Literal["auto", "pickle", "folders"]  # auto: the pickles where they are, else the class folders
CATEGORY_FOLDER = "tiered_imagenet_split"
LABEL_KEYS = ("label_specific", "label_general", "label_specific_str", "label_general_str")
HOW_TO = ("Provide tieredImageNet in one of three ways: (1) put a copy in that folder in one of its layouts: the "
          "pickles of Ren et al.'s distribution (tiered-imagenet.tar extracted, or the .tar itself: "
          "train_images_png.pkl, train_labels.pkl and the same for val and test), or the folders train/, val/ and "
          "test/ with one sub-folder of images per synset; (2) point dataset.source.root (or the data root: "
          "data_root=<folder> / SIMBENCH_DATA_ROOT, read as <data root>/tiered-imagenet) at the folder that holds "
          "such a copy; (3) make the class folders from your own ILSVRC-2012 training images with Ren et al.'s split "
          "files (tiered_imagenet_split/{train,val,test}.csv: synset, category). There is no download: ImageNet's "
          "terms of access do not allow redistributing its images.")


# ------------------------------------------------------------------------------------------------ pickles

def _numpy_module(module: str) -> str:
    """numpy 2 moved ``numpy.core`` to ``numpy._core``; older pickles name the old place."""
    if module.startswith("numpy.core") and hasattr(np, "_core"):
        return "numpy._core" + module[len("numpy.core"):]
    return module


# what pickled numpy arrays, lists, dicts and strings need, in any protocol, from Python 2 or 3
_ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
            ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"), ("numpy", "dtype"),
            ("_codecs", "encode"), ("builtins", "bytearray"), ("__builtin__", "bytearray")}


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, fix: str) -> None:
        super().__init__(file, encoding="latin1")  # numpy's advice for Python 2 pickles; str keys stay str
        self.path, self.fix = path, fix

    def find_class(self, module: str, name: str):
        module = _numpy_module(module)
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{self.path} asks to load {module}.{name}, which a data file of numpy arrays, "
                                         "lists and strings does not need; it is refused (unpickling can run code). "
                                         f"{self.fix}")
        if module == "__builtin__":
            module = "builtins"
        return getattr(importlib.import_module(module), name)


def load_pickle(path: Path, fix: str):
    """The data in the pickle ``path``: only numpy arrays, lists, dicts, numbers and strings are accepted.
    A damaged file, or one that asks for anything else, raises ``AnnotationError`` naming it and ``fix``."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} is missing; it is one of the files the data set is published as. {fix}")
    try:
        with open(path, "rb") as fh:
            return _DataUnpickler(fh, path, fix).load()
    except pickle.UnpicklingError as exc:
        if str(path) in str(exc):
            raise AnnotationError(str(exc)) from None
        raise AnnotationError(f"{path} is not a readable pickle ({exc}); the file is damaged or truncated. {fix}") from exc
    except (EOFError, OSError, ValueError, TypeError, AttributeError, ImportError, IndexError, KeyError,
            MemoryError) as exc:
        raise AnnotationError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc}); the file is damaged "
                              f"or truncated. {fix}") from exc


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _encoded_bytes(item) -> bytes:
    """One encoded image of the pickles as bytes: a byte string, a uint8 array (``cv2.imencode``), or a str
    that Python 2 wrote as bytes (read back through latin-1, which gives the bytes back unchanged)."""
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("latin1")
    return np.ascontiguousarray(item, dtype=np.uint8).tobytes()


def decode_encoded(item, name: str, fix: str = ""):
    """The PIL image encoded in ``item`` (PNG, JPEG, ...), fully loaded; an undecodable one raises
    ``ImageDecodeError`` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(_encoded_bytes(item))) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError) as exc:
        raise ImageDecodeError(f"{name} is not a readable image ({exc}); the pickle is damaged: replace it with the "
                               f"published copy. {fix}".rstrip()) from exc


def _check_header(item, name: str, fix: str) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(_encoded_bytes(item))) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError) as exc:
        raise ImageDecodeError(f"{name} is not a readable image ({exc}); the pickle is damaged: replace it with the "
                               f"published copy. {fix}".rstrip()) from exc


class EncodedImages(ImageFiles):
    """An ``ImageFiles`` array whose images are encoded files held in memory (the PNG byte strings of the
    tieredImageNet pickles) rather than files on disk; shapes, indexing, lazy subsets, devices and
    augmentation are ``ImageFiles``'. ``paths`` holds one name per image, ``"<pickle>[<position>]"``, which
    errors name; ``store`` maps each pickle's path to its list of encoded images (shared by every copy)."""

    def __init__(self, store: dict[str, Sequence], names: Sequence[str], transform: Callable,
                 item_shape: Sequence[int] | None = None, device: torch.device | str = "cpu", workers: int = 0) -> None:
        self.store = store
        super().__init__(names, transform, item_shape=item_shape, device=device, workers=workers)

    def __repr__(self) -> str:
        return "Encoded" + super().__repr__()

    def open(self, name: str):
        source, _, position = name[:-1].rpartition("[")
        return decode_encoded(self.store[source][int(position)], name)

    def _decode(self, name: str) -> Tensor:
        out = self.transform(self.open(name))
        if not isinstance(out, Tensor):
            raise TypeError(f"EncodedImages: the transform returned {type(out).__name__} for {name}, not a tensor; "
                            "end the transform with a conversion to a float tensor")
        return out

    def _checked(self, name: str, seed: int | None = None) -> Tensor:
        if seed is None:
            return super()._checked(name)  # through _decode above
        out = self.augment(self.open(name), torch.Generator().manual_seed(seed))
        if tuple(out.shape) != self.item_shape:
            raise ValueError(f"{name} became a tensor of shape {tuple(out.shape)}, not {self.item_shape}; the "
                             "training transform must give every image the data set's size")
        return out.to(self.dtype)

    def _copy(self, paths: np.ndarray, device: torch.device) -> EncodedImages:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)  # transform, store, workers, item shape, augmentation and its stream
        new.paths, new.device = paths, device
        return new


def _labels(path: Path, n_images: int, fix: str) -> dict:
    data = load_pickle(path, fix)
    if not isinstance(data, dict):
        raise AnnotationError(f"{path} holds a {type(data).__name__}, not the dict of {', '.join(LABEL_KEYS)}. {fix}")
    data = {_text(k): v for k, v in data.items()}
    missing = [k for k in LABEL_KEYS if k not in data]
    if missing:
        raise AnnotationError(f"{path} has no {', '.join(missing)} (it holds {', '.join(sorted(data))}); the labels "
                              f"file of the tieredImageNet pickles has {', '.join(LABEL_KEYS)}. {fix}")
    out = {}
    for key, names_key in (("label_specific", "label_specific_str"), ("label_general", "label_general_str")):
        try:
            ids = np.asarray(data[key]).astype(np.int64, casting="same_kind").reshape(-1)
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: {key} is not a sequence of integers. {fix}") from None
        names = [_text(n) for n in data[names_key]]
        if len(ids) != n_images:
            raise AnnotationError(f"{path}: {key} has {len(ids)} entries but the images pickle holds {n_images} "
                                  f"images; the two files are not a pair. {fix}")
        if len(ids) and (ids.min() < 0 or ids.max() >= len(names)):
            raise AnnotationError(f"{path}: {key} holds {int(ids.min())}..{int(ids.max())} but {names_key} has "
                                  f"{len(names)} names. {fix}")
        out[key], out[names_key] = ids, names
    return out


def _pickle_files(folder: Path, split: str) -> tuple[Path, Path]:
    return folder / f"{split}_images_png.pkl", folder / f"{split}_labels.pkl"


def _pickles_present(folder: Path) -> bool:
    return all(p.is_file() for split in ("train", "test") for p in _pickle_files(folder, split))


def _verify_encoded(store: dict[str, Sequence], names: list[str], mode: bool | str, workers: int, fix: str) -> None:
    """``datasets.dml.check_images`` for encoded images: "decode" (or True) decodes each one, "header"
    only opens it, "none" (or False) does nothing."""
    mode = verify_mode(mode)
    if mode == "none":
        return

    def check(name: str) -> None:
        source, _, position = name[:-1].rpartition("[")
        item = store[source][int(position)]
        if mode == "header":
            _check_header(item, name, fix)
        else:
            decode_encoded(item, name, fix)

    check_all(check, names, workers)


def _from_pickles(folder: Path, splits: Sequence[str], val_classes: str, transform: Callable,
                  verify_images: bool | str, workers: int) -> LabeledData:
    fix = (f"Extract {ARCHIVE.filename} into {folder} again (Ren et al.'s distribution: <split>_images_png.pkl and "
           "<split>_labels.pkl for train, val and test).")
    for split in splits:
        missing = [p for p in _pickle_files(folder, split) if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(f"tieredImageNet: {', '.join(str(p) for p in missing)} missing; the "
                                       f"{split} split is read (val when val_classes is train or test). {fix}")
    store: dict[str, Sequence] = {}
    names, sample_splits, sample_classes, sample_groups = [], [], [], []
    for split in splits:
        images_path, labels_path = _pickle_files(folder, split)
        images = load_pickle(images_path, fix)
        if isinstance(images, np.ndarray) and images.dtype != object:
            raise AnnotationError(f"{images_path} holds one {images.dtype} array of shape {images.shape}, not a list "
                                  f"of PNG-encoded images. {fix}")
        if not isinstance(images, (list, tuple, np.ndarray)):
            raise AnnotationError(f"{images_path} holds a {type(images).__name__}, not a list of PNG-encoded images. "
                                  f"{fix}")
        labels = _labels(labels_path, len(images), fix)
        store[str(images_path)] = images
        specific, general = labels["label_specific"], labels["label_general"]
        specific_names, general_names = labels["label_specific_str"], labels["label_general_str"]
        # a class is (category, class index); its name "<category>/<class name>", with "/" kept for that
        class_name = {}
        for s in np.unique(specific):
            cats = np.unique(general[specific == s])
            if len(cats) != 1:
                raise AnnotationError(f"{labels_path}: class {specific_names[s]!r} has images in {len(cats)} categories "
                                      f"({', '.join(general_names[c] for c in cats)}); each class is in one. {fix}")
            category = general_names[int(cats[0])].replace("/", "-")
            class_name[int(s)] = f"{category}/{specific_names[s]}"
        if len(set(class_name.values())) != len(class_name):  # the same name for two classes: tell them apart
            class_name = {s: f"{name} #{s}" for s, name in class_name.items()}
        names += [f"{images_path}[{i}]" for i in range(len(images))]
        sample_splits += [split] * len(images)
        sample_classes += [class_name[int(s)] for s in specific]
        sample_groups += [(split, int(g)) for g in general]
    y, classes, partition = published_labels(sample_splits, sample_classes, val_classes, "tieredImageNet",
                                             f"{folder}/<split>_labels.pkl")
    group_ids = {key: i for i, key in enumerate(dict.fromkeys(sample_groups))}
    groups = torch.tensor([group_ids[key] for key in sample_groups], dtype=torch.int64)
    _verify_encoded(store, names, verify_images, workers, fix)
    x = EncodedImages(store, names, transform, workers=workers)
    return LabeledData(x=x, y=y, classes=classes, groups=groups, name="tiered_imagenet",
                       partition=torch.as_tensor(partition, dtype=torch.int64))


# ------------------------------------------------------------------------------------------ class folders

def _categories(folder: Path, classes: set[str]) -> dict[str, str] | None:
    """class synset -> category synset from Ren et al.'s split files, if they are in ``folder`` or its
    ``tiered_imagenet_split/``; None when they are not. Every class of the copy must be in them."""
    for base in (folder / CATEGORY_FOLDER, folder):
        files = [base / f"{split}.csv" for split in ("train", "val", "test")]
        if not any(p.is_file() for p in files):
            continue
        category: dict[str, str] = {}
        for path in (p for p in files if p.is_file()):
            for number, row in enumerate(csv.reader(path.read_text(encoding="utf-8").splitlines()), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) != 2:
                    raise AnnotationError(f"{path} line {number} is {','.join(row)!r}, not '<synset>,<category "
                                          "synset>' (Ren et al.'s tiered_imagenet_split files); replace it with the "
                                          "published copy")
                synset, cat = row[0].strip(), row[1].strip()
                if category.setdefault(synset, cat) != cat:
                    raise AnnotationError(f"{path} line {number} puts {synset} in category {cat}, but another line "
                                          f"puts it in {category[synset]}; replace the split files with the published "
                                          "copies")
        unlisted = sorted(classes - set(category))
        if unlisted:
            raise AnnotationError(f"tieredImageNet: the split files in {base} give no category for the class "
                                  f"folder(s) {', '.join(unlisted[:5])}{' ...' if len(unlisted) > 5 else ''}; the "
                                  "copy and the split files disagree: use Ren et al.'s published split files, or "
                                  "remove them (then groups is None)")
        return category
    return None


def _from_folders(folder: Path, splits: Sequence[str], val_classes: str, transform: Callable,
                  verify_images: bool | str, workers: int) -> LabeledData:
    fix = f"Copy the tieredImageNet class folders into {folder} again (train/, val/, test/, one folder per synset)."
    entries = read_class_folders(folder, splits, "tieredImageNet", fix)
    y, classes, partition = published_labels([e[0] for e in entries], [e[1] for e in entries], val_classes,
                                             "tieredImageNet", "the class folders")
    category = _categories(folder, set(classes))
    groups = None
    if category is not None:
        cat_ids = {c: i for i, c in enumerate(sorted({category[name] for name in classes}))}
        groups = torch.tensor([cat_ids[category[classes[int(c)]]] for c in y], dtype=torch.int64)
        prefixed = [f"{category[name]}/{name}" for name in classes]  # group_names reads "<category>/<class>"
        classes = prefixed
    return image_data(folder, [e[2] for e in entries], y, classes, partition, transform, name="tiered_imagenet",
                      listed_in=f"the class folders of {folder}", fix=fix, groups=groups, verify_images=verify_images,
                      workers=workers)


def _present(folder: Path) -> bool:
    return _pickles_present(folder) or has_split_folders(folder, ("train", "test"))


def tiered_imagenet(root: str | Path, transform: Callable | None = None, val_classes: ValClasses = "drop",
                    layout: Layout = "auto", verify_images: VerifyImages = "decode", workers: int = 0) -> LabeledData:
    """tieredImageNet from ``root`` (see the module docstring).

    layout: "auto" (the pickles where they are, else the class folders), "pickle" or "folders".
    transform: PIL image -> tensor (default: ``EvalTransform(resize=84, crop=84)``, ImageNet statistics).
    val_classes: "drop" (default), "train" or "test". verify_images: the load-time check of every image,
    "decode" (default), "header" or "none". workers: decoding threads.
    """
    splits = used_splits(val_classes, "tieredImageNet")
    if layout not in get_args(Layout):
        raise ValueError(f"tieredImageNet: layout must be auto, pickle or folders, got {layout!r}")
    root = Path(root)
    present = {"auto": _present, "pickle": _pickles_present,
               "folders": lambda f: has_split_folders(f, ("train", "test"))}[layout]
    provide(root, [ARCHIVE], lambda: first_holding(root, SUBFOLDERS, present) is not None, False,
            "tieredImageNet", HOW_TO)
    folder = first_holding(root, SUBFOLDERS, present)
    transform = fewshot_transform(transform)
    if layout != "folders" and _pickles_present(folder):
        return _from_pickles(folder, splits, val_classes, transform, verify_images, workers)
    return _from_folders(folder, splits, val_classes, transform, verify_images, workers)
