"""CUB-200-2011 (Wah et al. 2011): 11,788 bird photographs of 200 species, read in its published layout.

Layout under ``root`` (the folder ``CUB_200_2011.tgz`` is extracted into; ``root`` may also be the
``CUB_200_2011`` folder itself)::

    CUB_200_2011/images.txt               <image_id> <class folder>/<file>.jpg
    CUB_200_2011/image_class_labels.txt   <image_id> <class_id>          (class ids 1..200)
    CUB_200_2011/classes.txt              <class_id> <NNN.Class_name>
    CUB_200_2011/images/<NNN.Class_name>/<file>.jpg

The deep-metric-learning split (Oh Song et al. 2016, as pytorch-metric-learning): classes 1-100 train,
101-200 test (5,864 / 5,924 images); ``train_test_split.txt``, the classification split, is not used.
Classes keep the names of ``classes.txt``.

Checksum: CaltechDATA publishes the md5 of ``CUB_200_2011.tgz`` (97eceeb196236b17998738112f37df78); an
archive found in ``root`` or downloaded (``download=True``, from CaltechDATA) is verified before it is
extracted. The extracted files have no published sums.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from datasets.archives import Archive, provide
from datasets.dml import (AnnotationError, VerifyImages, default_transform, folder_holding, image_data, labels_for,
                          read_rows, to_int)
from datasets.labeled import TEST, TRAIN, LabeledData

FOLDER = "CUB_200_2011"
ARCHIVE = Archive("CUB_200_2011.tgz", md5="97eceeb196236b17998738112f37df78",
                  url="https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1")
N_TRAIN_CLASSES = 100  # classes 1..100 train, the rest test
HOW_TO = ("Provide CUB-200-2011 in one of three ways: (1) extract CUB_200_2011.tgz, as published, into that folder "
          "(giving CUB_200_2011/images.txt ...), or just put the .tgz there; (2) point dataset.source.root (or the "
          "data root: data_root=<folder> / SIMBENCH_DATA_ROOT) at the folder holding CUB_200_2011/; "
          "(3) dataset.source.download=true to fetch it from CaltechDATA (data.caltech.edu, 1.1 GB; needs the "
          "internet).")


def cub(root: str | Path, transform: Callable | None = None, download: bool = False,
        verify_images: VerifyImages = "decode", workers: int = 0) -> LabeledData:
    """CUB-200-2011 from ``root`` as lazy images; ``partition`` is the DML split (classes 1-100 train).

    transform: PIL image -> tensor (default: ``datasets.transforms.EvalTransform()``, 224 crops).
    verify_images: the load-time image check, "decode" (default), "header" or "none"
    (``datasets.dml.check_images``). workers: decoding threads.
    """
    root = Path(root)
    provide(root, [ARCHIVE], lambda: folder_holding(root, FOLDER, "images.txt") is not None, download,
            "CUB-200-2011", HOW_TO)
    folder = folder_holding(root, FOLDER, "images.txt")
    fix = f"Extract {ARCHIVE.filename} into {folder.parent if folder.name == FOLDER else folder} again."

    images = {}
    for number, (image_id, path) in read_rows(folder / "images.txt", 2, fix=fix):
        images[to_int(image_id, folder / "images.txt", number, "image id")] = path.strip()
    labels = {}
    for number, (image_id, class_id) in read_rows(folder / "image_class_labels.txt", 2, fix=fix):
        where = folder / "image_class_labels.txt"
        labels[to_int(image_id, where, number, "image id")] = to_int(class_id, where, number, "class id")
    names = {}
    for number, (class_id, class_name) in read_rows(folder / "classes.txt", 2, fix=fix):
        names[to_int(class_id, folder / "classes.txt", number, "class id")] = class_name.strip()

    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise AnnotationError(f"{folder / 'image_class_labels.txt'} has no class for image id(s) {unlabelled[:5]} "
                              f"of images.txt; the annotation files do not match. {fix}")
    unnamed = sorted(set(labels.values()) - set(names))
    if unnamed:
        raise AnnotationError(f"{folder / 'classes.txt'} does not name class id(s) {unnamed[:5]} used in "
                              f"image_class_labels.txt. {fix}")
    ids = sorted(images)
    class_ids, y = labels_for([labels[i] for i in ids])
    partition = [TRAIN if labels[i] <= N_TRAIN_CLASSES else TEST for i in ids]
    return image_data(folder / "images", [images[i] for i in ids], y, [names[c] for c in class_ids], partition,
                      default_transform(transform), name="cub", listed_in=str(folder / "images.txt"), fix=fix,
                      verify_images=verify_images, workers=workers)
