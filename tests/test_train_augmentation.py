"""Training augmentation for the image data sets read from files (random resized crop + flip, seeded), and
the load-time image checks that run before any training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hydra.utils import instantiate

from benchmarks.run import execute, fit_data, prepare_split
from datasets.cub import cub
from datasets.dml import check_images
from datasets.image_files import ImageDecodeError, ImageFiles, without_augmentation
from datasets.transforms import EvalTransform, TrainTransform, random_resized_box
from test_dml_datasets import E2E_CLASSES, SMALL, TINY, write_cub, write_image

AUG = TrainTransform(crop=16)


def image_files(tmp_path, n: int = 6, workers: int = 0) -> ImageFiles:
    paths = []
    for i in range(n):
        path = tmp_path / f"img_{i}.png"
        write_image(path, seed=i, size=(30, 40))
        paths.append(path)
    return ImageFiles(paths, SMALL, workers=workers)


# ------------------------------------------------------------------------------------------ the crop box

@pytest.mark.parametrize("height, width", [(30, 40), (224, 224), (50, 13)])
def test_random_boxes_fit_the_image_and_keep_to_scale_and_ratio(height, width):
    g = torch.Generator().manual_seed(0)
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    for _ in range(300):
        top, left, h, w = random_resized_box(height, width, scale, ratio, g)
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width and h >= 1 and w >= 1
        if (h, w) == (height, width) or (top, left) == ((height - h) // 2, (width - w) // 2):
            continue  # possibly the fallback box
        # each side is the rounding of an exact side: |w - w*| <= 0.5, |h - h*| <= 0.5, with w* h* the drawn
        # area and w* / h* the drawn aspect ratio
        assert (w - 0.5) * (h - 0.5) <= scale[1] * height * width
        assert (w + 0.5) * (h + 0.5) >= scale[0] * height * width
        assert (w - 0.5) / (h + 0.5) <= ratio[1] and (w + 0.5) / (h - 0.5) >= ratio[0]


def test_random_boxes_are_spread_and_repeat_for_the_same_seed():
    boxes = [random_resized_box(100, 100, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(s))
             for s in range(200)]
    again = [random_resized_box(100, 100, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(s))
             for s in range(200)]
    assert boxes == again
    areas = np.array([h * w for _, _, h, w in boxes]) / 100 ** 2
    tops = np.array([t for t, _, _, _ in boxes])
    assert areas.min() < 0.15 and areas.max() > 0.9  # the whole range of scales is drawn
    assert len(set(tops.tolist())) > 30  # and the box moves


def test_a_box_that_cannot_fit_falls_back_to_the_widest_centred_box_within_the_ratio():
    # a 4 x 100 strip cannot hold a box of aspect <= 4/3 with >= 90% of its area: the fallback
    g = torch.Generator().manual_seed(0)
    top, left, h, w = random_resized_box(4, 100, (0.9, 1.0), (3 / 4, 4 / 3), g)
    assert (h, w) == (4, 5) and top == 0 and left == (100 - 5) // 2
    top, left, h, w = random_resized_box(100, 4, (0.9, 1.0), (3 / 4, 4 / 3), g)
    assert (h, w) == (5, 4) and left == 0 and top == (100 - 5) // 2


# ------------------------------------------------------------------------------------------ the transform

def test_the_whole_image_at_its_own_size_unflipped_is_the_evaluation_transform(tmp_path):
    path = tmp_path / "a.png"
    write_image(path, seed=3, size=(16, 16))
    image = Image.open(path)
    whole = TrainTransform(crop=16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0)
    out = whole(image, torch.Generator().manual_seed(0))
    assert out.shape == (3, 16, 16)
    assert torch.allclose(out, EvalTransform(resize=None, crop=16)(image), atol=1e-6)


def test_the_flip_mirrors_the_same_crop(tmp_path):
    path = tmp_path / "a.png"
    write_image(path, seed=4, size=(30, 40))
    image = Image.open(path)
    plain = TrainTransform(crop=16, flip=0.0)(image, torch.Generator().manual_seed(7))
    flipped = TrainTransform(crop=16, flip=1.0)(image, torch.Generator().manual_seed(7))
    assert torch.allclose(flipped, plain.flip(-1), atol=1e-6) and not torch.allclose(flipped, plain)
    half = TrainTransform(crop=16, flip=0.5)
    flips = [bool(torch.allclose(half(image, torch.Generator().manual_seed(s)),
                                 TrainTransform(crop=16, flip=0.0)(image, torch.Generator().manual_seed(s)).flip(-1),
                                 atol=1e-6)) for s in range(40)]
    assert 8 <= sum(flips) <= 32  # about half of them


def test_train_transform_shape_grey_and_bad_settings(tmp_path):
    path = tmp_path / "a.png"
    write_image(path, seed=5)
    grey = TrainTransform(crop=[12, 10], grey=True)
    assert grey.output_shape == (1, 12, 10)
    assert grey(Image.open(path), torch.Generator().manual_seed(0)).shape == (1, 12, 10)
    with pytest.raises(TypeError, match="needs a torch.Generator"):
        AUG(Image.open(path))
    with pytest.raises(ValueError, match="scale must be"):
        TrainTransform(scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="ratio must be"):
        TrainTransform(ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="flip is a probability"):
        TrainTransform(flip=2)
    with pytest.raises(ValueError, match="TrainTransform: mean has 3 values but the images have 1"):
        TrainTransform(grey=True, mean=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="TrainTransform: crop must be positive"):
        TrainTransform(crop=0)


# ------------------------------------------------------------------------------------------ augmented image files

def test_augmented_batches_repeat_for_a_seed_whatever_the_threads(tmp_path):
    files = image_files(tmp_path)
    runs = []
    for workers in (0, 4):
        files.workers = workers
        x = files.augmented(AUG, seed=11)
        runs.append([x[[0, 1, 2, 3, 4, 5]], x[2:5], x[torch.tensor([5, 0])], x[1]])
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    first = runs[0]
    assert not torch.allclose(first[0][2:5], first[1])  # the same images drawn again are cropped anew
    other = files.augmented(AUG, seed=12)[[0, 1, 2, 3, 4, 5]]
    assert not torch.allclose(other, first[0])
    assert first[0].shape == (6, *SMALL.output_shape)


def test_plain_copy_subset_and_device_of_an_augmented_array(tmp_path):
    files = image_files(tmp_path)
    x = files.augmented(AUG, seed=0)
    assert torch.equal(x.plain()[0:6], files[0:6]) and torch.equal(without_augmentation(x)[1], files[1])
    assert without_augmentation(files) is files
    t = torch.zeros(3, 2)
    assert without_augmentation(t) is t
    sub = x.subset([4, 5])
    assert sub.augment is AUG and sub.plain().augment is None and x.to("cpu").augment is AUG
    # a subset draws from the parent's stream: the same requests in the same order give the same batches
    a = files.augmented(AUG, seed=3)
    b = files.augmented(AUG, seed=3)
    assert torch.equal(a.subset([4, 5])[0:2], b[[4, 5]])
    assert "augmented by TrainTransform" in repr(x)


def test_a_training_transform_of_another_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(3, 20, 20\) but the data set's transform gives \(3, 16, 16\)"):
        image_files(tmp_path).augmented(TrainTransform(crop=20), seed=0)


# ------------------------------------------------------------------------------------------ the runner

def test_only_the_fit_sees_the_augmented_training_side(compose_cfg, tmp_path):
    write_cub(tmp_path / "data", classes=E2E_CLASSES, per_class=6)
    cfg = compose_cfg("dataset=cub", f"data_root={tmp_path / 'data'}", "protocol=retrieval_published", *TINY)
    assert cfg.dataset.train_transform.crop == 16  # follows the evaluation crop
    split = prepare_split(cfg, instantiate(cfg.protocol.evaluator))
    assert split.train.x.augment is None and split.test.x.augment is None  # what the protocols see
    train = fit_data(split.train, cfg)
    assert isinstance(train.x.augment, TrainTransform) and torch.equal(train.y, split.train.y)
    again = fit_data(split.train, cfg)
    assert torch.equal(train.x[0:8], again.x[0:8])  # seeded by the run's seed
    other = fit_data(split.train, compose_cfg("dataset=cub", f"data_root={tmp_path / 'data'}", *TINY, "seed=1"))
    assert not torch.allclose(other.x[0:8], train.x[0:8])
    off = compose_cfg("dataset=cub", f"data_root={tmp_path / 'data'}", *TINY, "dataset.train_transform=null")
    assert fit_data(split.train, off) is split.train
    seen = []
    from methods.triplet import TripletNetwork as TripletNet
    original = TripletNet.fit

    def spy(self, data, ctx):
        seen.append(data.x.augment)
        return original(self, data, ctx)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TripletNet, "fit", spy)
        assert execute(cfg)["status"] == "ok"
    assert len(seen) == 1 and isinstance(seen[0], TrainTransform)


def test_the_knn_reference_set_is_not_augmented(compose_cfg, tmp_path):
    """The k-NN protocol searches the training side: a reference row's error must not move with the
    training seed or the training augmentation."""
    write_cub(tmp_path / "data", classes=E2E_CLASSES, per_class=6)
    base = ["dataset=cub", f"data_root={tmp_path / 'data'}", "protocol=knn", *TINY, "method=raw"]
    errors = set()
    for i, extra in enumerate([["seed=0"], ["seed=1"], ["seed=0", "dataset.train_transform=null"]]):
        record = execute(compose_cfg(*base, *extra, f"study=knn{i}"))
        assert record["status"] == "ok"
        errors.add(round(record["metrics"]["knn_error"]["mean"], 12))
    assert len(errors) == 1


def test_frozen_feature_learners_fit_on_the_unaugmented_images(tmp_path):
    from methods.frozen import LinearMetricOnFeatures

    files = image_files(tmp_path)
    learner = LinearMetricOnFeatures(None)  # the flattened pixels as features
    augmented = files.augmented(AUG, seed=0)
    assert torch.equal(learner.frozen_train_features(augmented), learner.frozen_train_features(files))
    assert not torch.equal(augmented[0:6], files[0:6])


# ------------------------------------------------------------------------------------------ load-time checks

def test_a_truncated_jpeg_passes_the_header_check_and_fails_the_default_decode_check(tmp_path):
    root = write_cub(tmp_path)
    bad = root / "CUB_200_2011" / "images" / "002.Bird_2" / "Bird_2_0001.jpg"
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) - 50])  # the end of the scan is gone, the header is whole
    cub(root, transform=SMALL, verify_images="header")  # the header is intact
    for workers in (0, 3):
        with pytest.raises(ImageDecodeError, match="Bird_2_0001.jpg is not a readable image.*truncated"):
            cub(root, transform=SMALL, verify_images="decode", workers=workers)
    with pytest.raises(ImageDecodeError, match="Bird_2_0001.jpg is not a readable image"):
        cub(root, transform=SMALL)  # the default decodes every image before any training
    cub(root, transform=SMALL, verify_images="none")


def test_check_images_modes(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"not a jpeg")
    for mode in (True, "header", "decode"):
        with pytest.raises(ImageDecodeError, match="x.jpg is not a readable image"):
            check_images([path], mode)
    check_images([path], False)
    check_images([path], "none")
    with pytest.raises(ValueError, match="verify_images must be one of none, header, decode"):
        check_images([path], "full")
