"""CIFAR-FS (Bertinetto et al. 2019, "Meta-learning with differentiable closed-form solvers"): the 60,000
32x32 CIFAR-100 images (train and test files pooled, 600 per class), with the paper's class split: 64
training, 16 validation and 20 test classes, by fine-label name.

Read from torchvision's copy of CIFAR-100, ``root/cifar-100-python/{train,test,meta}`` (or ``root`` being
that folder itself); a ``cifar-100-python.tar.gz`` in ``root`` is md5-checked and extracted, and
``download=True`` fetches it through torchvision (its address and checksum are torchvision's
``CIFAR100``'s). Only numpy arrays, lists, dicts and strings are unpickled
(``datasets.tiered_imagenet.load_pickle``).

The split: ``splits=None`` (default) reads ``root/cifar-fs-splits/{train,val,test}.txt`` (one fine-label
name per line, as Bertinetto et al.'s ``data/cifar-fs/splits/bertinetto/``) when that folder exists, else
uses the lists below, which are the paper's split as published with torchmeta
(``torchmeta/datasets/assets/cifar100/cifar-fs/{train,val,test}.json``, which lists each class with its
CIFAR-100 super-class). ``splits="embedded"`` always uses the lists; any other value is a folder of the
three files.

The images are decoded into one float tensor (n, 3, 32, 32) in [0, 1] (60,000 images: 740 MB; the
data set config standardises them with training statistics). ``partition``: the training classes
``TRAIN``, the test classes ``TEST``, the validation classes as ``val_classes`` says (``"drop"``,
default; ``"train"``; ``"test"``). Classes are the fine-label names, training first, then validation,
then test, each sorted; ``groups`` are the CIFAR-100 super-classes (coarse labels; they span the splits).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datasets.archives import Archive, provide
from datasets.dml import AnnotationError, folder_holding
from datasets.errors import DatasetNotFoundError
from datasets.labeled import LabeledData
from datasets.mini_imagenet import SPLITS, ValClasses, published_labels, used_splits
from datasets.tiered_imagenet import load_pickle

FOLDER = "cifar-100-python"
SPLIT_FOLDER = "cifar-fs-splits"
PARTS = ("train", "test")
TRAIN_CLASSES = (
    "apple", "aquarium_fish", "bear", "bee", "bottle", "bowl", "boy", "bridge", "bus", "can", "castle", "caterpillar",
    "chair", "clock", "cloud", "cockroach", "couch", "cup", "dinosaur", "dolphin", "elephant", "forest", "girl",
    "hamster", "house", "kangaroo", "keyboard", "lawn_mower", "lion", "lizard", "lobster", "mountain", "mouse",
    "mushroom", "oak_tree", "orange", "orchid", "palm_tree", "pear", "pine_tree", "plate", "porcupine", "possum",
    "rabbit", "raccoon", "ray", "road", "seal", "shrew", "skunk", "skyscraper", "snake", "spider", "squirrel",
    "streetcar", "sunflower", "tank", "tiger", "train", "trout", "tulip", "turtle", "willow_tree", "wolf",
)
VAL_CLASSES = (
    "beaver", "beetle", "butterfly", "camel", "cattle", "crab", "crocodile", "flatfish", "lamp", "maple_tree",
    "motorcycle", "otter", "sea", "shark", "television", "tractor",
)
TEST_CLASSES = (
    "baby", "bed", "bicycle", "chimpanzee", "fox", "leopard", "man", "pickup_truck", "plain", "poppy", "rocket",
    "rose", "snail", "sweet_pepper", "table", "telephone", "wardrobe", "whale", "woman", "worm",
)
EMBEDDED = dict(zip(SPLITS, (TRAIN_CLASSES, VAL_CLASSES, TEST_CLASSES)))
HOW_TO = ("Provide CIFAR-100 for CIFAR-FS in one of three ways: (1) put torchvision's copy in that folder "
          "(cifar-100-python/ with train, test and meta, as cifar-100-python.tar.gz extracts), or just the .tar.gz; "
          "(2) point dataset.source.root (or the data root: data_root=<folder> / SIMBENCH_DATA_ROOT) at the folder "
          "holding cifar-100-python/; (3) dataset.source.download=true to fetch it through torchvision from "
          "www.cs.toronto.edu (169 MB; needs the internet). The class split is built in (Bertinetto et al.'s); "
          f"{SPLIT_FOLDER}/{{train,val,test}}.txt beside cifar-100-python/ replaces it.")


def cifar100_archive() -> Archive:
    """CIFAR-100's python archive as torchvision's ``CIFAR100`` names it: file, md5 and address."""
    from torchvision.datasets import CIFAR100

    return Archive(CIFAR100.filename, md5=CIFAR100.tgz_md5, url=CIFAR100.url)


def _present(root: Path) -> bool:
    folder = folder_holding(root, FOLDER, "meta")
    return folder is not None and all((folder / part).is_file() for part in PARTS)


def read_split_files(folder: Path, names: list[str], splits) -> dict[str, list[str]]:
    """The class names of each split file in ``folder`` (one per line), checked against CIFAR-100's fine
    labels ``names``."""
    known = set(names)
    fix = (f"Give CIFAR-100's fine-label names as its meta file spells them (e.g. maple_tree, aquarium_fish), or "
           f"remove {folder} to use the built-in split of Bertinetto et al.")
    out, seen = {}, {}
    for split in splits:
        path = folder / f"{split}.txt"
        if not path.is_file():
            raise DatasetNotFoundError(f"CIFAR-FS: {path} is missing; the split folder holds train.txt, val.txt and "
                                       f"test.txt, one CIFAR-100 class name per line (val.txt is read when "
                                       f"val_classes is train or test). {fix}")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise AnnotationError(f"{path} cannot be read as text ({exc}). {fix}") from exc
        classes = []
        for number, line in enumerate(lines, start=1):
            name = line.strip()
            if not name:
                continue
            if name not in known:
                raise AnnotationError(f"{path} line {number}: {name!r} is not a CIFAR-100 class (the meta file lists "
                                      f"{len(names)} fine labels, e.g. {', '.join(names[:3])}). {fix}")
            if name in seen:
                raise AnnotationError(f"{path} line {number}: {name!r} is already in {seen[name]}; the splits are "
                                      f"class-disjoint. {fix}")
            seen[name] = path.name
            classes.append(name)
        if not classes:
            raise AnnotationError(f"{path} names no class. {fix}")
        out[split] = classes
    return out


def cifar_fs(root: str | Path, val_classes: ValClasses = "drop", splits: str | None = None, download: bool = False,
             max_per_class: int | None = None) -> LabeledData:
    """CIFAR-FS from torchvision's CIFAR-100 copy in ``root`` (see the module docstring).

    val_classes: "drop" (default), "train" or "test". splits: None (the split files in
    ``root/cifar-fs-splits`` if there, else the built-in lists), "embedded", or a folder of split files.
    download: fetch CIFAR-100 through torchvision when it is not in ``root``. max_per_class: keep the
    first N images of each class (train file first), for a smaller copy.
    """
    wanted = used_splits(val_classes, "CIFAR-FS")
    root = Path(root)
    provide(root, [cifar100_archive()], lambda: _present(root), download, "CIFAR-100 (for CIFAR-FS)", HOW_TO)
    folder = folder_holding(root, FOLDER, "meta")
    fix = f"Extract cifar-100-python.tar.gz into {folder.parent if folder.name == FOLDER else folder} again."

    meta = load_pickle(folder / "meta", fix)
    if not isinstance(meta, dict) or "fine_label_names" not in meta:
        raise AnnotationError(f"{folder / 'meta'} has no fine_label_names; it is not CIFAR-100's meta file. {fix}")
    names = [str(n) for n in meta["fine_label_names"]]

    if splits == "embedded" or (splits is None and not (root / SPLIT_FOLDER).is_dir()):
        unknown = sorted({c for s in wanted for c in EMBEDDED[s]} - set(names))
        if unknown:
            raise AnnotationError(f"{folder / 'meta'} does not name the CIFAR-100 class(es) {', '.join(unknown[:5])} "
                                  f"of the built-in CIFAR-FS split; it is not CIFAR-100's meta file. {fix}")
        split_classes = {s: list(EMBEDDED[s]) for s in wanted}
    else:
        split_classes = read_split_files(root / SPLIT_FOLDER if splits is None else Path(splits), names, wanted)
    split_of = {c: s for s, classes in split_classes.items() for c in classes}

    images, fine, coarse = [], [], []
    for part in PARTS:
        path = folder / part
        data = load_pickle(path, fix)
        if not isinstance(data, dict) or not {"data", "fine_labels", "coarse_labels"} <= set(data):
            raise AnnotationError(f"{path} lacks data, fine_labels or coarse_labels; it is not a CIFAR-100 file. {fix}")
        x = np.asarray(data["data"])
        labels = np.asarray(data["fine_labels"], dtype=np.int64).reshape(-1)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(labels):
            raise AnnotationError(f"{path}: data is {x.dtype} {x.shape} with {len(labels)} labels, not n rows of "
                                  f"3072 bytes (32x32 RGB) with one label each; the file is damaged. {fix}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise AnnotationError(f"{path}: a fine label outside 0..{len(names) - 1}; the file is damaged. {fix}")
        images.append(x)
        fine.append(labels)
        coarse.append(np.asarray(data["coarse_labels"], dtype=np.int64).reshape(-1))
    x, fine, coarse = np.concatenate(images), np.concatenate(fine), np.concatenate(coarse)

    keep = np.array([names[f] in split_of for f in fine], dtype=bool)
    if max_per_class is not None:
        order = np.flatnonzero(keep)
        rank = np.zeros(len(fine), dtype=np.int64)
        counts: dict[int, int] = {}
        for i in order:
            rank[i] = counts.get(int(fine[i]), 0)
            counts[int(fine[i])] = rank[i] + 1
        keep &= rank < int(max_per_class)
    index = np.flatnonzero(keep)
    absent = sorted(set(split_of) - {names[f] for f in fine[index]})
    if absent:
        raise AnnotationError(f"CIFAR-FS: {folder} has no image of the split's class(es) {', '.join(absent[:5])}; the "
                              f"CIFAR-100 files are incomplete. {fix}")
    sample_classes = [names[f] for f in fine[index]]
    y, classes, partition = published_labels([split_of[c] for c in sample_classes], sample_classes, val_classes,
                                             "CIFAR-FS", "the split lists")
    pixels = torch.from_numpy(x[index]).reshape(-1, 3, 32, 32).float().div_(255.0)
    return LabeledData(x=pixels, y=y, classes=classes, groups=torch.from_numpy(coarse[index].copy()), name="cifar_fs",
                       partition=torch.as_tensor(partition, dtype=torch.int64))
