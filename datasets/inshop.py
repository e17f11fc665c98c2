"""In-shop Clothes Retrieval (DeepFashion, Liu et al. 2016): 52,712 shop photographs of 7,982 clothing
items, read in its published layout.

Layout under ``root``::

    img/<MEN|WOMEN>/<Category>/id_XXXXXXXX/<NN>_<k>_<view>.jpg     (img.zip, extracted)
    Eval/list_eval_partition.txt   (or list_eval_partition.txt in ``root`` itself)

``list_eval_partition.txt``: a line with the number of images, a header line
``image_name item_id evaluation_status``, then one row per image, evaluation_status one of train / query /
gallery. Classes are the items (``id_XXXXXXXX``). The standard protocol: the 3,997 train items (25,882
images) train; at test the 14,218 query images are searched in the 12,612 gallery images (3,985 items).
``partition`` marks train (0), query (1) and gallery (2); ``datasets.splits.PublishedSplit`` turns it into
a split with ``test_roles`` (query 0 / gallery 1).

Checksums: none are published for the In-shop files, so nothing is verified. No download either: the
files are on the DeepFashion Google Drive, given out after an agreement form (some of its zips are
password-protected; the password comes with the form). An ``img.zip`` put in ``root`` is extracted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from datasets.archives import Archive, provide
from datasets.dml import AnnotationError, VerifyImages, default_transform, image_data, labels_for, read_rows, to_int
from datasets.labeled import GALLERY, QUERY, TRAIN, LabeledData

ARCHIVES = (Archive("img.zip"),)
PARTITION_FILE = "list_eval_partition.txt"
STATUS = {"train": TRAIN, "query": QUERY, "gallery": GALLERY}
HOW_TO = ("Provide In-shop Clothes Retrieval by hand (it cannot be downloaded automatically): fill in the "
          "DeepFashion agreement form (mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html), then from "
          "its Google Drive folder 'In-shop Clothes Retrieval Benchmark' put Img/img.zip (extracted to img/, or "
          "the zip itself) and Eval/list_eval_partition.txt into that folder, keeping Eval/ or not; or point "
          "dataset.source.root (or data_root=<folder> / SIMBENCH_DATA_ROOT) at the folder holding them.")


def partition_file(root: Path) -> Path | None:
    for candidate in (root / "Eval" / PARTITION_FILE, root / PARTITION_FILE):
        if candidate.is_file():
            return candidate
    return None


def inshop(root: str | Path, transform: Callable | None = None, download: bool = False,
           verify_images: VerifyImages = "decode", workers: int = 0) -> LabeledData:
    """In-shop from ``root`` as lazy images; ``partition``: train / query / gallery as published.

    transform: PIL image -> tensor (default: ``datasets.transforms.EvalTransform()``). download: nothing
    can be downloaded; True only changes the error's wording. verify_images: the load-time image
    check, "decode" (default), "header" or "none" (``datasets.dml.check_images``).
    """
    root = Path(root)
    provide(root, ARCHIVES, lambda: (root / "img").is_dir() and partition_file(root) is not None, download,
            "In-shop Clothes Retrieval", HOW_TO)
    listed_in = partition_file(root)
    fix = "Replace it with the published Eval/list_eval_partition.txt."
    rows = read_rows(listed_in, 3, skip=2, fix=fix)
    lines = listed_in.read_text(encoding="utf-8").splitlines()
    declared = to_int(lines[0].strip(), listed_in, 1, "the image count")
    if declared != len(rows):
        raise AnnotationError(f"{listed_in} says it lists {declared} images but holds {len(rows)} rows; the file is "
                              f"truncated or damaged. {fix}")
    paths, items, partition = [], [], []
    for number, (path, item, status) in rows:
        status = status.strip()
        if status not in STATUS:
            raise AnnotationError(f"{listed_in} line {number}: evaluation_status {status!r} is not one of "
                                  f"{', '.join(STATUS)}. {fix}")
        paths.append(path)
        items.append(item)
        partition.append(STATUS[status])
    train_items = {i for i, p in zip(items, partition) if p == TRAIN}
    test_items = {i for i, p in zip(items, partition) if p != TRAIN}
    shared = sorted(train_items & test_items)
    if shared:
        raise AnnotationError(f"{listed_in}: item(s) {shared[:5]} are both train and query/gallery; the published "
                              f"split is item-disjoint, so the file is damaged. {fix}")
    distinct, y = labels_for(items)
    return image_data(root, paths, y, list(distinct), partition, default_transform(transform), name="inshop",
                      listed_in=str(listed_in), verify_images=verify_images, workers=workers,
                      fix=f"Extract img.zip into {root} again (giving img/...), or fix {listed_in.name}.")
