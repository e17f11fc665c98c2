"""The few-shot image sets with a published class split (miniImageNet, tieredImageNet, CIFAR-FS) on tiny
copies written here in each published layout: classes per partition, labels against the files and the
pixels, the val_classes options, groups, the errors on missing or damaged input, and whole runs of the
runner under protocol=fewshot_published."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import datasets.cifar_fs as cifar_module
from benchmarks.run import build, execute
from datasets import archives
from datasets.archives import md5_of
from datasets.cifar_fs import TEST_CLASSES, TRAIN_CLASSES, VAL_CLASSES, cifar_fs
from datasets.dml import AnnotationError
from datasets.errors import DatasetNotFoundError
from datasets.group_split import GroupDisjointSplit, group_names
from datasets.image_files import ImageDecodeError, ImageFiles
from datasets.labeled import TEST, TRAIN
from datasets.mini_imagenet import mini_imagenet
from datasets.splits import PublishedSplit
from datasets.tiered_imagenet import EncodedImages, tiered_imagenet
from datasets.transforms import EvalTransform, TrainTransform
from tests.data_builders import (
    CIFAR100_FINE,
    ROOT,
    cifar_pixel,
    class_colour,
    class_image,
    fewshot_synsets,
    write_cifar100,
    write_mini_imagenet_csv,
    write_split_folders,
    write_tiered_pickles,
)

SMALL = EvalTransform(resize=16, crop=16)
PLAIN = EvalTransform(resize=None, crop=12, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])  # pixels / 255, as written
SYNSETS = fewshot_synsets()  # 3 train, 2 val, 3 test classes
TRAIN_SYN, VAL_SYN, TEST_SYN = SYNSETS["train"], SYNSETS["val"], SYNSETS["test"]


def class_seed(synset: str) -> int:
    """The colour seed the builders gave a synset: its position over train, val, test."""
    return [s for split in ("train", "val", "test") for s in SYNSETS[split]].index(synset)


def partition_of_class(data, name: str) -> set[int]:
    c = data.classes.index(name)
    return set(data.partition[data.y == c].tolist())


# ------------------------------------------------------------------------------------------ miniImageNet

@pytest.mark.parametrize("layout", ["csv", "folders"])
def test_mini_imagenet_classes_partition_and_files(tmp_path, layout):
    if layout == "csv":
        write_mini_imagenet_csv(tmp_path, per_class=4)
    else:
        write_split_folders(tmp_path, per_class=4)
    data = mini_imagenet(tmp_path, transform=SMALL)
    assert isinstance(data.x, ImageFiles) and data.x.shape == (24, 3, 16, 16) and data.groups is None
    assert data.classes == TRAIN_SYN + TEST_SYN  # val dropped; training classes first, each sorted
    assert data.counts().tolist() == [4] * 6
    assert data.partition.tolist() == [TRAIN] * 12 + [TEST] * 12
    for path, label in zip(data.x.paths, data.y.tolist()):  # each image's label is its csv row's / folder's
        assert Path(path).name.startswith(data.classes[label])
        if layout == "folders":
            assert Path(path).parent.name == data.classes[label]
    # and the pixels are the class's: the decoded mean colour is the colour written for that synset
    plain = mini_imagenet(tmp_path, transform=PLAIN)
    means = plain.x[:].mean(dim=(2, 3)) * 255
    expected = torch.stack([torch.tensor(class_colour(class_seed(plain.classes[c])), dtype=torch.float32)
                            for c in plain.y.tolist()])
    assert float((means - expected).abs().max()) < 6
    split = PublishedSplit()(data, seed=0)
    assert split.kind == "published" and split.test_roles is None
    assert [data.classes[int(c)] for c in split.train.present_classes] == TRAIN_SYN
    assert [data.classes[int(c)] for c in split.test.present_classes] == TEST_SYN
    assert torch.equal(PublishedSplit()(data, seed=5).test_index, split.test_index)


def test_mini_imagenet_val_classes_options(tmp_path):
    write_mini_imagenet_csv(tmp_path, per_class=4)
    as_train = mini_imagenet(tmp_path, transform=SMALL, val_classes="train")
    as_test = mini_imagenet(tmp_path, transform=SMALL, val_classes="test")
    for data in (as_train, as_test):
        assert data.classes == TRAIN_SYN + VAL_SYN + TEST_SYN and len(data) == 32
        assert all(partition_of_class(data, s) == {TRAIN} for s in TRAIN_SYN)
        assert all(partition_of_class(data, s) == {TEST} for s in TEST_SYN)
    assert all(partition_of_class(as_train, s) == {TRAIN} for s in VAL_SYN)
    assert all(partition_of_class(as_test, s) == {TEST} for s in VAL_SYN)
    assert len(PublishedSplit()(as_test, seed=0).test.present_classes) == 5
    with pytest.raises(ValueError, match="val_classes must be one of drop, train, test"):
        mini_imagenet(tmp_path, transform=SMALL, val_classes="keep")


def test_mini_imagenet_layout_in_a_subfolder_default_transform_and_suffixes(tmp_path):
    write_split_folders(tmp_path / "miniImageNet", per_class=2, size=84, suffix=".png")
    (tmp_path / "miniImageNet" / "train" / TRAIN_SYN[0] / "Thumbs.db").write_bytes(b"not an image")
    data = mini_imagenet(tmp_path)  # the sub-folder is found, the stray file is not an image of the class
    assert data.x.shape == (12, 3, 84, 84) and data.x[0].shape == (3, 84, 84)
    assert data.counts().tolist() == [2] * 6


def test_mini_imagenet_missing_or_damaged_input(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no download") as info:
        mini_imagenet(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "dataset.source.root" in message and "train.csv" in message
    assert "(1)" in message and "(2)" in message and "(3)" in message

    root = write_mini_imagenet_csv(tmp_path / "mini", per_class=3)
    gone = root / "images" / f"{TEST_SYN[1]}00000002.jpg"
    gone.unlink()
    with pytest.raises(DatasetNotFoundError, match=f"test.csv names 1 image\\(s\\) that are not in .*{gone.name}"):
        mini_imagenet(root, transform=SMALL)
    bad = root / "images" / f"{TRAIN_SYN[0]}00000001.jpg"
    (root / "images" / gone.name).write_bytes(bad.read_bytes())
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageDecodeError, match=f"{bad.name} is not a readable image"):
        mini_imagenet(root, transform=SMALL)
    assert len(mini_imagenet(root, transform=SMALL, verify_images="none")) == 18  # existence only
    # the validation split is read only when it is used
    (root / "val.csv").unlink()
    assert len(mini_imagenet(root, transform=SMALL, verify_images="none")) == 18
    with pytest.raises(DatasetNotFoundError, match="val.csv is missing"):
        mini_imagenet(root, transform=SMALL, val_classes="train", verify_images="none")


def test_mini_imagenet_damaged_split_files(tmp_path):
    root = write_mini_imagenet_csv(tmp_path, per_class=2)
    train = (root / "train.csv").read_text()
    (root / "train.csv").write_text(train.replace("filename,label", "image,class"))
    with pytest.raises(AnnotationError, match="train.csv line 1 is 'image,class', not the header"):
        mini_imagenet(root, transform=SMALL)
    (root / "train.csv").write_text(train + "broken line\n")
    with pytest.raises(AnnotationError, match="train.csv line 8 is 'broken line'"):
        mini_imagenet(root, transform=SMALL)
    # a test class that is also a training class: the published splits are class-disjoint
    test_rows = (root / "test.csv").read_text().splitlines()
    moved = test_rows[1].split(",")[0]
    (root / "train.csv").write_text(train + f"{moved},{TEST_SYN[0]}\n")
    (root / "test.csv").write_text("\n".join(r for r in test_rows if not r.startswith(moved)) + "\n")
    with pytest.raises(AnnotationError, match=f"class '{TEST_SYN[0]}' is in both the train and the test split"):
        mini_imagenet(root, transform=SMALL)
    (root / "train.csv").write_text(train)
    (root / "test.csv").write_text("\n".join(test_rows) + "\n")
    shutil.rmtree(root / "images")
    with pytest.raises(DatasetNotFoundError, match="holds the split files but no images/ folder"):
        mini_imagenet(root, transform=SMALL)


# ---------------------------------------------------------------------------------------- tieredImageNet

def tiered_expected(written, splits):
    """(class name, category, seed) per image, in the loader's order of samples (split by split)."""
    return [(f"{cat}/{name}", cat, seed) for split in splits for cat, name, seed in written[split]]


@pytest.mark.parametrize("protocol, as_array", [(2, True), (pickle.HIGHEST_PROTOCOL, False)])
def test_tiered_pickles_classes_groups_and_pixels(tmp_path, protocol, as_array):
    written = write_tiered_pickles(tmp_path, per_class=5, protocol=protocol, as_array=as_array)
    data = tiered_imagenet(tmp_path, transform=PLAIN)
    assert isinstance(data.x, EncodedImages) and data.x.shape == (30, 3, 12, 12)
    assert data.classes == ["craft/canoe", "garment/jersey", "garment/kimono", "fruit/fig", "fruit/lemon", "tool/hammer"]
    assert data.counts().tolist() == [5] * 6
    assert data.partition.tolist() == [TRAIN] * 15 + [TEST] * 15
    expected = tiered_expected(written, ("train", "test"))
    assert [data.classes[c] for c in data.y.tolist()] == [name for name, _, _ in expected]
    pixels = data.x[:]  # PNG is lossless: every decoded image is exactly the one written
    for i, (_, _, seed) in enumerate(expected):
        k = (i % 15) // 3  # each split: 15 images, interleaved over its 3 classes
        written_pixels = torch.from_numpy(class_image(seed, k)).permute(2, 0, 1).float() / 255
        assert torch.allclose(pixels[i], written_pixels, atol=1e-6)
    # groups are the super-categories: the same group exactly where the category is the same
    categories = [cat for _, cat, _ in expected]
    same_group = data.groups[:, None] == data.groups[None, :]
    same_category = torch.tensor([[a == b for b in categories] for a in categories])
    assert torch.equal(same_group, same_category)
    assert sorted(group_names(data).values()) == ["craft", "fruit", "garment", "tool"]
    split = GroupDisjointSplit(held_out=["fruit"])(data, seed=0)
    assert [data.classes[int(c)] for c in split.test.present_classes] == ["fruit/fig", "fruit/lemon"]
    published = PublishedSplit()(data, seed=0)
    assert [data.classes[int(c)] for c in published.test.present_classes] == data.classes[3:]
    if protocol == 2:  # as numpy 1 (and Python 2) wrote them: numpy.core, not numpy._core
        for name in ("train_labels.pkl", "train_images_png.pkl"):
            raw = (tmp_path / name).read_bytes()
            assert b"numpy._core" in raw
            (tmp_path / name).write_bytes(raw.replace(b"numpy._core", b"numpy.core"))
        assert torch.equal(tiered_imagenet(tmp_path, transform=PLAIN).x[:], pixels)


def test_tiered_pickles_val_classes_lazy_subsets_and_augmentation(tmp_path):
    write_tiered_pickles(tmp_path, per_class=4)
    data = tiered_imagenet(tmp_path, transform=SMALL, val_classes="test", workers=2)
    assert data.classes[3:5] == ["dog/beagle", "dog/borzoi"] and len(data) == 32
    assert partition_of_class(data, "dog/beagle") == {TEST} and partition_of_class(data, "dog/borzoi") == {TEST}
    assert len(set(data.groups.tolist())) == 5
    as_train = tiered_imagenet(tmp_path, transform=SMALL, val_classes="train")
    assert partition_of_class(as_train, "dog/beagle") == {TRAIN}
    split = PublishedSplit()(data, seed=0)
    assert isinstance(split.test.x, EncodedImages) and len(split.test.x) == 20  # lazy: nothing decoded
    assert torch.equal(split.test.x[[0, 3]], data.x[split.test_index[[0, 3]]])
    augment = TrainTransform(crop=16, scale=(0.5, 1.0))
    a = data.x.augmented(augment, seed=3)[:6]
    assert a.shape == (6, 3, 16, 16) and torch.equal(a, data.x.augmented(augment, seed=3)[:6])
    assert not torch.equal(a, data.x[:6]) and torch.equal(data.x.augmented(augment, seed=3).plain()[:6], data.x[:6])


def test_tiered_folder_layout_with_and_without_category_files(tmp_path):
    root = write_split_folders(tmp_path / "tiered-imagenet", per_class=4)
    data = tiered_imagenet(tmp_path, transform=SMALL)  # the sub-folder is found
    assert data.classes == TRAIN_SYN + TEST_SYN and data.groups is None and data.counts().tolist() == [4] * 6
    assert data.partition.tolist() == [TRAIN] * 12 + [TEST] * 12
    # Ren et al.'s split files (synset, category synset) give the super-categories
    category = {TRAIN_SYN[0]: "n09000001", TRAIN_SYN[1]: "n09000001", TRAIN_SYN[2]: "n09000002",
                VAL_SYN[0]: "n09000003", VAL_SYN[1]: "n09000003", TEST_SYN[0]: "n09000004", TEST_SYN[1]: "n09000005",
                TEST_SYN[2]: "n09000005"}
    splits_dir = root / "tiered_imagenet_split"
    splits_dir.mkdir()
    for split, synsets in SYNSETS.items():
        (splits_dir / f"{split}.csv").write_text("".join(f"{s},{category[s]}\n" for s in synsets))
    grouped = tiered_imagenet(tmp_path, transform=SMALL)
    assert grouped.classes == [f"{category[s]}/{s}" for s in TRAIN_SYN + TEST_SYN]
    assert [group_names(grouped)[int(g)] for g in grouped.groups] == [category[s] for s in TRAIN_SYN + TEST_SYN
                                                                     for _ in range(4)]
    (splits_dir / "test.csv").write_text(f"{TEST_SYN[0]},{category[TEST_SYN[0]]}\n")
    with pytest.raises(AnnotationError, match=f"give no category for the class folder\\(s\\) {TEST_SYN[1]}"):
        tiered_imagenet(tmp_path, transform=SMALL)


class _Planted:
    """Unpickles to a call of os.mkdir: what a malicious pickle would do."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


def test_tiered_missing_or_damaged_pickles(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="tiered-imagenet.tar") as info:
        tiered_imagenet(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "dataset.source.root" in message and "no download" in message

    root = tmp_path / "tiered"
    write_tiered_pickles(root, per_class=3)
    with pytest.raises(DatasetNotFoundError, match="val_images_png.pkl.*missing"):
        os.remove(root / "val_images_png.pkl")
        tiered_imagenet(root, transform=SMALL, val_classes="train")
    assert len(tiered_imagenet(root, transform=SMALL)) == 18  # val is not read when it is dropped

    images = pickle.loads((root / "train_images_png.pkl").read_bytes())
    images[4] = np.frombuffer(b"\x89PNG\r\n\x1a\n but damaged", dtype=np.uint8)
    (root / "train_images_png.pkl").write_bytes(pickle.dumps(images, protocol=2))
    with pytest.raises(ImageDecodeError, match="train_images_png.pkl\\[4\\] is not a readable image"):
        tiered_imagenet(root, transform=SMALL)
    lazy = tiered_imagenet(root, transform=SMALL, verify_images="none")
    with pytest.raises(ImageDecodeError, match="train_images_png.pkl\\[4\\]"):
        lazy.x[3:6]
    (root / "train_images_png.pkl").write_bytes(pickle.dumps(images[:-1], protocol=2))
    with pytest.raises(AnnotationError, match="label_specific has 9 entries but the images pickle holds 8"):
        tiered_imagenet(root, transform=SMALL)

    marker = tmp_path / "planted"
    (root / "train_images_png.pkl").write_bytes(pickle.dumps([_Planted(marker)], protocol=2))
    with pytest.raises(AnnotationError, match="asks to load posix.mkdir|asks to load os.mkdir"):
        tiered_imagenet(root, transform=SMALL)
    assert not marker.exists()  # refused, not run
    (root / "train_labels.pkl").write_bytes(b"garbage")
    (root / "train_images_png.pkl").write_bytes(pickle.dumps(images, protocol=2))
    with pytest.raises(AnnotationError, match="train_labels.pkl is not a readable pickle"):
        tiered_imagenet(root, transform=SMALL)
    labels = {"label_specific": [0], "label_general": [0]}
    (root / "train_labels.pkl").write_bytes(pickle.dumps(labels, protocol=2))
    with pytest.raises(AnnotationError, match="has no label_specific_str, label_general_str"):
        tiered_imagenet(root, transform=SMALL)


def test_tiered_archive_in_root_is_extracted(tmp_path):
    made = tmp_path / "made" / "tiered-imagenet"
    write_tiered_pickles(made, per_class=2)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "tiered-imagenet.tar", "w") as tar:
        tar.add(made, arcname="tiered-imagenet")
    data = tiered_imagenet(root, transform=SMALL)
    assert (root / "tiered-imagenet" / "train_labels.pkl").is_file() and len(data.classes) == 6


# ---------------------------------------------------------------------------------------------- CIFAR-FS

def test_embedded_cifar_fs_split_covers_cifar100_once():
    assert (len(TRAIN_CLASSES), len(VAL_CLASSES), len(TEST_CLASSES)) == (64, 16, 20)
    together = list(TRAIN_CLASSES) + list(VAL_CLASSES) + list(TEST_CLASSES)
    assert sorted(together) == CIFAR100_FINE  # every CIFAR-100 class exactly once
    assert len(CIFAR100_FINE) == 100


def test_cifar_fs_embedded_split_pixels_and_groups(tmp_path):
    write_cifar100(tmp_path, per_class=(2, 1))
    data = cifar_fs(tmp_path)
    assert isinstance(data.x, torch.Tensor) and data.x.dtype == torch.float32 and data.x.shape == (84 * 3, 3, 32, 32)
    assert data.classes == list(TRAIN_CLASSES) + list(TEST_CLASSES)  # both lists are sorted
    assert data.counts().tolist() == [3] * 84
    assert all(partition_of_class(data, c) == {TRAIN} for c in TRAIN_CLASSES)
    assert all(partition_of_class(data, c) == {TEST} for c in TEST_CLASSES)
    # the pixels of each image are those written for its class (train file first, then test), and the
    # groups are the coarse labels
    fine = torch.tensor([CIFAR100_FINE.index(data.classes[c]) for c in data.y.tolist()])
    seen: dict[int, int] = {}
    for i, f in enumerate(fine.tolist()):
        k = seen.get(f, 0)
        seen[f] = k + 1
        assert torch.all(data.x[i] * 255 == cifar_pixel(f, k))
    assert torch.equal(data.groups, fine % 20)
    kept = cifar_fs(tmp_path, val_classes="test")
    assert len(kept.classes) == 100 and all(partition_of_class(kept, c) == {TEST} for c in VAL_CLASSES)
    assert cifar_fs(tmp_path, val_classes="train").partition.eq(TRAIN).sum() == 80 * 3
    assert cifar_fs(tmp_path, max_per_class=2).counts().tolist() == [2] * 84
    assert torch.equal(cifar_fs(tmp_path / "cifar-100-python").y, data.y)  # root may be the folder itself


def write_split_files(root: Path, splits: dict[str, list[str]]) -> Path:
    folder = root / "cifar-fs-splits"
    folder.mkdir(parents=True, exist_ok=True)
    for split, names in splits.items():
        (folder / f"{split}.txt").write_text("\n".join(names) + "\n")
    return folder


def test_cifar_fs_split_files(tmp_path):
    names = ["apple", "bear", "cloud", "dolphin", "elephant", "fox", "girl", "house", "lion", "mouse"]
    write_cifar100(tmp_path, per_class=(3, 1), fine_names=names)
    folder = write_split_files(tmp_path, {"train": ["bear", "apple", "cloud"], "val": ["dolphin", "elephant"],
                                          "test": ["girl", "fox", "house"]})
    data = cifar_fs(tmp_path, val_classes="test")
    assert data.classes == ["apple", "bear", "cloud", "dolphin", "elephant", "fox", "girl", "house"]
    assert data.counts().tolist() == [4] * 8 and data.partition.tolist().count(TEST) == 20
    assert "lion" not in data.classes  # a class in no split file is not used
    with pytest.raises(AnnotationError, match="is not a CIFAR-100 class|does not name"):
        cifar_fs(tmp_path, splits="embedded")  # a meta file without the paper's classes
    (folder / "test.txt").write_text("girl\nfox\nmaple tree\n")
    with pytest.raises(AnnotationError, match="test.txt line 3: 'maple tree' is not a CIFAR-100 class") as info:
        cifar_fs(tmp_path)
    assert "remove" in str(info.value) and "built-in split" in str(info.value)
    (folder / "test.txt").write_text("girl\nbear\n")
    with pytest.raises(AnnotationError, match="test.txt line 2: 'bear' is already in train.txt"):
        cifar_fs(tmp_path)
    (folder / "test.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="test.txt is missing"):
        cifar_fs(tmp_path)


def test_cifar_fs_missing_data_and_download(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError, match="download=true") as info:
        cifar_fs(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value) and "dataset.source.root" in str(info.value)

    def offline(url, folder, filename):
        raise OSError("no network here")

    monkeypatch.setattr(archives, "fetch_url", offline)
    with pytest.raises(DatasetNotFoundError, match="The download failed .*no network here"):
        cifar_fs(tmp_path / "offline", download=True)
    assert cifar_module.cifar100_archive().url.startswith("https://www.cs.toronto.edu/")  # torchvision's address

    made = write_cifar100(tmp_path / "made", per_class=(2, 1))
    tgz = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(made / "cifar-100-python", arcname="cifar-100-python")
    fetched = []

    def fake_fetch(url, folder, filename):  # what torchvision's download_url would do, without the network
        fetched.append(url)
        Path(folder, filename).write_bytes(tgz.read_bytes())

    monkeypatch.setattr(archives, "fetch_url", fake_fetch)
    monkeypatch.setattr(cifar_module, "cifar100_archive",
                        lambda: archives.Archive(tgz.name, md5=md5_of(tgz), url="http://x/cifar-100-python.tar.gz"))
    data = cifar_fs(tmp_path / "fetched", download=True)
    assert fetched == ["http://x/cifar-100-python.tar.gz"] and len(data.classes) == 84


# ------------------------------------------------------------------------------------------- whole runs

TINY = ["method=protonet", "backbone=conv4", "backbone.channels=8", "budget.iterations=3", "budget.episodes=10",
        "method.learner.n_way=2", "method.learner.k_shot=1", "method.learner.n_query=1", "protocol=fewshot_published",
        "protocol.evaluator.n_way=2", "protocol.evaluator.shots=[1]", "protocol.evaluator.n_query=2",
        "protocol.evaluator.n_episodes=3", "study=fewshot_sets"]
LAZY = ["dataset.source.workers=0", "dataset.source.transform.resize=16", "dataset.source.transform.crop=16"]


@pytest.mark.parametrize("dataset, writer, extra", [
    ("mini_imagenet", lambda d: write_mini_imagenet_csv(d / "mini-imagenet", per_class=3), LAZY + [
        "dataset.train_transform={_target_: datasets.transforms.TrainTransform, crop: 16}"]),
    ("tiered_imagenet", lambda d: write_tiered_pickles(d / "tiered-imagenet", per_class=3), LAZY),
    ("cifar_fs", lambda d: write_cifar100(d, per_class=(2, 1)), []),
])
def test_runner_trains_on_the_published_training_classes(compose_cfg, tmp_path, dataset, writer, extra):
    writer(tmp_path / "data")
    cfg = compose_cfg(f"dataset={dataset}", f"data_root={tmp_path / 'data'}", *TINY, *extra)
    data = build(cfg.dataset.source)
    record = execute(cfg)
    assert record["status"] == "ok" and record["dataset"] == dataset and record["protocol"] == "fewshot_published"
    test_ids = sorted(set(data.y[data.partition == TEST].tolist()))
    assert record["split"]["kind"] == "published" and record["split"]["test_classes"] == test_ids
    assert record["split"]["n_train"] == int((data.partition == TRAIN).sum())
    assert record["split"]["n_test"] == int((data.partition == TEST).sum())
    assert 0.0 <= record["metrics"]["acc_2w1s"]["mean"] <= 1.0 and record["metrics"]["acc_2w1s"]["n"] == 3


def test_command_line_run_on_mini_imagenet_folders(tmp_path):
    write_split_folders(tmp_path / "data" / "mini-imagenet", per_class=3)
    args = [sys.executable, "-m", "benchmarks.run", "dataset=mini_imagenet", f"data_root={tmp_path / 'data'}",
            "method=raw", f"results_dir={tmp_path / 'results'}", "progress=false", "dataset.source.val_classes=test",
            *[a for a in TINY if not a.startswith(("method", "budget.iterations"))], *LAZY]
    done = subprocess.run(args, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    records = list((tmp_path / "results" / "runs" / "fewshot_sets" / "mini_imagenet").rglob("record.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["split"]["test_classes"] == [3, 4, 5, 6, 7]  # the 2 val classes joined the 3 test classes
    assert record["split"]["n_train"] == 9 and record["split"]["n_test"] == 15


def test_missing_data_fails_before_training(compose_cfg, tmp_path):
    cfg = compose_cfg("dataset=mini_imagenet", f"data_root={tmp_path / 'empty'}", *TINY)
    with pytest.raises(DatasetNotFoundError, match="no download") as info:
        execute(cfg)
    assert str(tmp_path / "empty" / "mini-imagenet") in str(info.value)
    record = json.loads((Path(cfg.run_dir) / "record.json").read_text())
    assert record["status"] == "failed" and record["error"]["type"] == "DatasetNotFoundError"
    assert "split" not in record and "fit_s" not in record["timings"]  # it stopped at loading, before any training


def test_validation_on_a_published_split_holds_out_a_quarter_of_the_training_classes(compose_cfg, tmp_path):
    synsets = fewshot_synsets(n_train=8, n_val=2, n_test=3)
    write_mini_imagenet_csv(tmp_path / "data" / "mini-imagenet", synsets=synsets, per_class=3)
    cfg = compose_cfg("dataset=mini_imagenet", f"data_root={tmp_path / 'data'}", *TINY, *LAZY, "validation=true")
    data = build(cfg.dataset.source)
    record = execute(cfg)
    assert record["status"] == "ok" and record["protocol"] == "fewshot_published@validation"
    assert record["split"]["kind"] == "validation (class_disjoint)"
    train_ids = set(data.y[data.partition == TRAIN].tolist())
    held_out = set(record["split"]["test_classes"])
    assert len(held_out) == 2 and held_out < train_ids  # 2 of the 8 training classes; no test class is seen
    assert record["split"]["n_train"] + record["split"]["n_test"] == 8 * 3
