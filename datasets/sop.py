"""Stanford Online Products (Oh Song et al. 2016): 120,053 eBay photographs of 22,634 products in 12
super-classes (bicycle, cabinet, chair, ...), read in its published layout.

Layout under ``root`` (the folder ``Stanford_Online_Products.zip`` is extracted into; ``root`` may also be
the ``Stanford_Online_Products`` folder itself)::

    Stanford_Online_Products/Ebay_train.txt   image_id class_id super_class_id path   (a header line, then rows)
    Stanford_Online_Products/Ebay_test.txt    the same columns
    Stanford_Online_Products/<category>_final/<file>.JPG

The standard split: the 11,318 classes of ``Ebay_train.txt`` (59,551 images) train, the 11,316 of
``Ebay_test.txt`` (60,502 images) test. Classes are named ``"<category>/<class_id>"``; ``groups`` are the
super-classes (their ids in the files), named by category, so ``datasets.group_split.GroupDisjointSplit``
can hold out whole categories.

Checksum: the publisher gives none; the md5 pinned by pytorch-metric-learning's former
``datasets.StanfordOnlineProducts`` (7f73d41a2f44250d4779881525aea32e) is used: an archive found in ``root``
or downloaded (``download=True``, from ftp.cs.stanford.edu, 2.9 GB) is verified before it is extracted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from datasets.archives import Archive, provide
from datasets.dml import (AnnotationError, VerifyImages, default_transform, folder_holding, image_data, labels_for,
                          read_rows, to_int)
from datasets.labeled import TEST, TRAIN, LabeledData

FOLDER = "Stanford_Online_Products"
ARCHIVE = Archive("Stanford_Online_Products.zip", md5="7f73d41a2f44250d4779881525aea32e",
                  url="http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip")
FILES = {TRAIN: "Ebay_train.txt", TEST: "Ebay_test.txt"}
HOW_TO = ("Provide Stanford Online Products in one of three ways: (1) extract Stanford_Online_Products.zip, as "
          "published, into that folder (giving Stanford_Online_Products/Ebay_train.txt ...), or just put the .zip "
          "there; (2) point dataset.source.root (or data_root=<folder> / SIMBENCH_DATA_ROOT) at the folder holding "
          "Stanford_Online_Products/; (3) dataset.source.download=true to fetch it from ftp.cs.stanford.edu (needs "
          "the internet); if that address is down, the authors' page (cvgl.stanford.edu/projects/lifted_struct) "
          "links a copy on Google Drive to download by hand.")


def _category(path: str) -> str:
    top = path.split("/", 1)[0]
    return top[: -len("_final")] if top.endswith("_final") else top


def sop(root: str | Path, transform: Callable | None = None, download: bool = False,
        verify_images: VerifyImages = "decode", workers: int = 0) -> LabeledData:
    """Stanford Online Products from ``root`` as lazy images; ``partition``: the published train/test files;
    ``groups``: the super-classes.

    transform: PIL image -> tensor (default: ``datasets.transforms.EvalTransform()``). verify_images:
    the load-time image check, "header" (default; 120k files: about a minute), "decode" or "none"
    (``datasets.dml.check_images``). workers: decoding threads.
    """
    root = Path(root)
    provide(root, [ARCHIVE], lambda: folder_holding(root, FOLDER, "Ebay_train.txt") is not None, download,
            "Stanford Online Products", HOW_TO)
    folder = folder_holding(root, FOLDER, "Ebay_train.txt")
    fix = f"Extract {ARCHIVE.filename} into {folder.parent if folder.name == FOLDER else folder} again."

    paths, class_ids, super_ids, partition = [], [], [], []
    classes_of: dict[int, set[int]] = {}
    category_of_super: dict[int, str] = {}
    for part, name in FILES.items():
        where = folder / name
        for number, (_, class_id, super_id, path) in read_rows(where, 4, skip=1, fix=fix):
            c, s = to_int(class_id, where, number, "class_id"), to_int(super_id, where, number, "super_class_id")
            path = path.strip()
            if category_of_super.setdefault(s, _category(path)) != _category(path):
                raise AnnotationError(f"{where} line {number}: super-class {s} holds {path}, outside its folder "
                                      f"{category_of_super[s]}_final/; the file is damaged. {fix}")
            paths.append(path)
            class_ids.append(c)
            super_ids.append(s)
            partition.append(part)
            classes_of.setdefault(part, set()).add(c)
    shared = sorted(classes_of.get(TRAIN, set()) & classes_of.get(TEST, set()))
    if shared:
        raise AnnotationError(f"{folder}: class id(s) {shared[:5]} appear in both Ebay_train.txt and Ebay_test.txt; "
                              f"the published split is class-disjoint, so the files are damaged. {fix}")
    distinct, y = labels_for(class_ids)
    category_of_class = dict(zip(class_ids, (category_of_super[s] for s in super_ids)))
    _, groups = labels_for(super_ids)
    return image_data(folder, paths, y, [f"{category_of_class[c]}/{c}" for c in distinct], partition,
                      default_transform(transform), name="sop", listed_in=f"{folder}/Ebay_{{train,test}}.txt", fix=fix,
                      groups=torch.as_tensor(groups), verify_images=verify_images, workers=workers)
