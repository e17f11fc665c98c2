"""Cars196 (Stanford Cars, Krause et al. 2013): 16,185 photographs of 196 car models.

Two layouts are read under ``root``:

- the original release (what DML papers use): ``car_ims/000001.jpg`` ... (``car_ims.tgz``) and
  ``cars_annos.mat``, whose ``annotations`` struct has ``relative_im_path`` ("car_ims/000001.jpg"),
  ``class`` (1..196) and ``test`` (0/1), and whose ``class_names`` names the classes;
- torchvision's ``StanfordCars`` layout (``root`` or ``root/stanford_cars``): ``devkit/cars_meta.mat``,
  ``devkit/cars_train_annos.mat`` + ``cars_train/``, ``cars_test_annos_withlabels.mat`` + ``cars_test/``;
  the same images and class ids, used when the original layout is absent.

The deep-metric-learning split (Oh Song et al. 2016, as pytorch-metric-learning): classes 1-98 train,
99-196 test (8,054 / 8,131 images). The ``test`` flag of the classification task (a split *within* every
class) is ignored: DML holds out whole classes.

Checksums: the publisher gives none; the md5 sums pinned by pytorch-metric-learning's former
``datasets.Cars196`` (and many DML codebases) are used: ``car_ims.tgz`` d5c8f0aa497503f355e17dc7886c3f14,
``cars_annos.mat`` b407c6086d669747186bd1d764ff9dbc. While ``car_ims/`` is not yet extracted, the
``car_ims.tgz`` and ``cars_annos.mat`` found in ``root`` are verified, then the archive is extracted; an
extracted layout (and torchvision's) is read as it is. There is no download: the original site
(ai.stanford.edu/~jkrause/cars) is gone, and ``download=True`` says so and how to get the files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from datasets.archives import Archive, provide
from datasets.dml import AnnotationError, VerifyImages, default_transform, folder_holding, image_data, labels_for
from datasets.errors import DatasetNotFoundError
from datasets.labeled import TEST, TRAIN, LabeledData

ARCHIVES = (Archive("car_ims.tgz", md5="d5c8f0aa497503f355e17dc7886c3f14"),
            Archive("cars_annos.mat", md5="b407c6086d669747186bd1d764ff9dbc", extract=False))
N_TRAIN_CLASSES = 98  # classes 1..98 train, the rest test
TORCHVISION_FOLDER = "stanford_cars"
HOW_TO = ("Provide Cars196 in one of three ways: (1) put the original car_ims.tgz (or its extracted car_ims/ folder) "
          "and cars_annos.mat into that folder; (2) or torchvision's StanfordCars layout (stanford_cars/devkit/, "
          "cars_train/, cars_test/, cars_test_annos_withlabels.mat), as the Kaggle copies of Stanford Cars give it; "
          "(3) point dataset.source.root (or data_root=<folder> / SIMBENCH_DATA_ROOT) at the folder holding them. "
          "The original site (ai.stanford.edu/~jkrause/cars) is gone, so nothing can be downloaded: copy the files "
          "from a mirror or a colleague.")


def _load_mat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(str(path), squeeze_me=True)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError ... on a damaged file
        raise AnnotationError(f"{path} cannot be read as a MATLAB file ({type(exc).__name__}: {exc}); replace it "
                              "with the published copy") from exc


def _field(records: np.ndarray, name: str, path: Path) -> list:
    if records.dtype.names is None or name not in records.dtype.names:
        raise AnnotationError(f"{path}: 'annotations' has no field {name!r} (fields: {records.dtype.names}); "
                              "it is not the published file")
    return [v.item() if isinstance(v, np.ndarray) else v for v in np.atleast_1d(records[name])]


def _annotations(mat: dict, path: Path) -> np.ndarray:
    if "annotations" not in mat:
        raise AnnotationError(f"{path} has no 'annotations' variable; it is not the published file")
    return np.atleast_1d(mat["annotations"])


def _class_names(mat: dict, path: Path) -> list[str]:
    if "class_names" not in mat:
        raise AnnotationError(f"{path} has no 'class_names' variable; it is not the published file")
    return [str(n) for n in np.atleast_1d(mat["class_names"])]


def _original(folder: Path) -> tuple[list[str], list[int], list[str], Path]:
    path = folder / "cars_annos.mat"
    mat = _load_mat(path)
    records = _annotations(mat, path)
    relative = [str(p) for p in _field(records, "relative_im_path", path)]
    classes = [int(c) for c in _field(records, "class", path)]
    _field(records, "test", path)  # present in the published file; the DML split ignores it
    return relative, classes, _class_names(mat, path), path


def _torchvision(folder: Path) -> tuple[list[str], list[int], list[str], Path]:
    meta = folder / "devkit" / "cars_meta.mat"
    names = _class_names(_load_mat(meta), meta)
    relative, classes = [], []
    for annos, images in ((folder / "devkit" / "cars_train_annos.mat", "cars_train"),
                          (folder / "cars_test_annos_withlabels.mat", "cars_test")):
        if not annos.is_file():
            raise DatasetNotFoundError(f"Cars196 (torchvision layout in {folder}): {annos} is missing. {HOW_TO}")
        records = _annotations(_load_mat(annos), annos)
        relative += [f"{images}/{f}" for f in _field(records, "fname", annos)]
        classes += [int(c) for c in _field(records, "class", annos)]
    return relative, classes, names, meta


def cars196(root: str | Path, transform: Callable | None = None, download: bool = False,
            verify_images: VerifyImages = "decode", workers: int = 0) -> LabeledData:
    """Cars196 from ``root`` as lazy images; ``partition`` is the DML split (classes 1-98 train).

    transform: PIL image -> tensor (default: ``datasets.transforms.EvalTransform()``). download: there is
    no source left; True only changes the error's wording. verify_images: the load-time image
    check, "decode" (default), "header" or "none" (``datasets.dml.check_images``).
    """
    root = Path(root)

    def torchvision_folder() -> Path | None:
        return folder_holding(root, TORCHVISION_FOLDER, "devkit/cars_meta.mat")

    def original_present() -> bool:
        return (root / "cars_annos.mat").is_file() and (root / "car_ims").is_dir()

    if torchvision_folder() is None or any((root / a.filename).exists() for a in ARCHIVES):
        provide(root, ARCHIVES, original_present, download, "Cars196", HOW_TO)
    if original_present():
        folder, (relative, class_ids, names, listed_in) = root, _original(root)
    else:
        folder = torchvision_folder()
        relative, class_ids, names, listed_in = _torchvision(folder)
    bad = sorted({c for c in class_ids if not 1 <= c <= len(names)})
    if bad:
        raise AnnotationError(f"{listed_in}: class id(s) {bad[:5]} outside 1..{len(names)} (the class_names "
                              "listed); the file is damaged: replace it with the published copy")
    distinct, y = labels_for(class_ids)
    partition = [TRAIN if c <= N_TRAIN_CLASSES else TEST for c in class_ids]
    return image_data(folder, relative, y, [names[c - 1] for c in distinct], partition,
                      default_transform(transform), name="cars196", listed_in=str(listed_in),
                      fix=f"Extract car_ims.tgz into {folder} again (or the torchvision layout's cars_train.tgz / "
                      "cars_test.tgz), or replace the annotation file with the published copy.",
                      verify_images=verify_images, workers=workers)
