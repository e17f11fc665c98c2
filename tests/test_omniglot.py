"""The Omniglot loader, the alphabet-disjoint split and the official one-shot protocol, on small zips the
tests write in the published layout; then the real files in the shared data folder when they are there."""
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import datasets.omniglot as om
from benchmarks.protocols.omniglot_oneshot import AllForTraining, OmniglotOneShotProtocol, read_runs
from benchmarks.run import execute
from conftest import require_real_data
from data_builders import real_data_root, write_all_runs_zip, write_omniglot_zip
from datasets.group_split import GroupDisjointSplit, group_names
from datasets.labeled import LabeledData, Standardizer
from datasets.splits import Split, SplitError
from helpers import blobs
from methods.base import RunContext
from methods.raw import RawFeatures

SMALL1 = {"Balinese": [1, 2], "Greek": [1, 2, 3], "Latin": [1, 2]}
SMALL2 = {"Greek": [1, 2, 3, 4], "Latin": [1, 2], "Tagalog": [1, 2, 3]}


@pytest.fixture
def omni_root(tmp_path):
    root = tmp_path / "omniglot"
    write_omniglot_zip(root / "images_background_small1.zip", SMALL1, drawers=3)
    write_omniglot_zip(root / "images_background_small2.zip", SMALL2, drawers=3)
    return root


def test_reads_one_zip(omni_root):
    data = om.omniglot(omni_root, sets=["images_background_small1"])
    assert data.x.shape == (7 * 3, 1, 28, 28) and data.x.dtype == torch.float32
    assert data.y.dtype == torch.int64 and data.groups.dtype == torch.int64
    assert data.classes == ["Balinese/character01", "Balinese/character02", "Greek/character01",
                            "Greek/character02", "Greek/character03", "Latin/character01", "Latin/character02"]
    assert data.counts().tolist() == [3] * 7
    assert group_names(data) == {0: "Balinese", 1: "Greek", 2: "Latin"}
    assert 0.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0
    # inverted by default: the white background is 0, strokes are 1
    assert float(data.x[:, 0, 0, -1].mean()) < 0.5 < float(om.omniglot(omni_root, sets=["images_background_small1"],
                                                                      invert=False).x[:, 0, 0, -1].mean())


def test_image_size_options(omni_root):
    full = om.omniglot(omni_root, sets=["images_background_small1.zip"], image_size=None)
    assert full.input_shape == (1, 105, 105)
    assert set(torch.unique(full.x).tolist()) == {0.0, 1.0}  # binary files, no resampling
    assert om.omniglot(omni_root, sets=["images_background_small1"], image_size=[20, 24]).input_shape == (1, 20, 24)
    assert om.omniglot(omni_root, max_per_class=2).counts().tolist() == [2] * 11


def test_overlapping_small_sets_are_one_class_per_character(omni_root):
    data = om.omniglot(omni_root)  # both small sets, Greek and Latin in both
    expected = sorted({f"{a}/character{n:02d}" for sets in (SMALL1, SMALL2) for a, ns in sets.items() for n in ns})
    assert data.classes == expected and len(expected) == 11
    assert data.counts().tolist() == [3] * 11  # a shared character's images count once
    assert len(set(data.classes)) == len(data.classes)
    assert group_names(data) == {0: "Balinese", 1: "Greek", 2: "Latin", 3: "Tagalog"}
    # Greek/character04 is only in small2; the merged class holds exactly small2's images
    only2 = om.omniglot(omni_root, sets=["images_background_small2"])
    c_all, c_two = data.classes.index("Greek/character04"), only2.classes.index("Greek/character04")
    assert torch.equal(data.x[data.y == c_all], only2.x[only2.y == c_two])


def test_same_character_in_two_zips_merges_distinct_drawers(tmp_path):
    write_omniglot_zip(tmp_path / "images_background_small1.zip", {"Greek": [1]}, drawers=2)
    write_omniglot_zip(tmp_path / "images_background_small2.zip", {"Greek": [1]}, drawers=4)
    data = om.omniglot(tmp_path)
    assert data.classes == ["Greek/character01"] and len(data) == 4


def test_rotations_are_extra_classes_in_the_same_alphabet(omni_root):
    base = om.omniglot(omni_root, sets=["images_background_small1"])
    rot = om.omniglot(omni_root, sets=["images_background_small1"], rotations=[0, 90, 180, 270])
    n = len(base.classes)
    assert len(rot.classes) == 4 * n and len(rot) == 4 * len(base)
    assert rot.classes[:n] == base.classes and rot.classes[n] == base.classes[0] + "/rot90"
    assert rot.classes[3 * n] == base.classes[0] + "/rot270"
    assert len(set(rot.classes)) == 4 * n
    for k in range(4):
        part = slice(k * len(base), (k + 1) * len(base))
        assert torch.equal(rot.x[part], torch.rot90(base.x, k=k, dims=(-2, -1)))
        assert torch.equal(rot.y[part], base.y + k * n) and torch.equal(rot.groups[part], base.groups)
    assert not torch.equal(rot.x[len(base):2 * len(base)], base.x)
    only90 = om.omniglot(omni_root, sets=["images_background_small1"], rotations=[90])
    assert only90.classes[0].endswith("/rot90") and len(only90.classes) == n
    with pytest.raises(ValueError, match="rotations"):
        om.omniglot(omni_root, rotations=[0, 45])


def test_missing_files_give_one_error_naming_folder_files_and_ways(tmp_path):
    with pytest.raises(om.DatasetNotFoundError) as info:
        om.omniglot(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert "images_background_small1.zip" in message and "images_background_small2.zip" in message
    assert "data_root=" in message and "SIMBENCH_DATA_ROOT" in message and "download=true" in message
    assert "brendenlake/omniglot" in message
    with pytest.raises(ValueError, match="unknown"):
        om.omniglot(tmp_path, sets=["images_nonsense"])


def test_download_fetches_missing_zips_only_when_asked(tmp_path, monkeypatch):
    fetched = []

    def fake_download(folder, name):
        fetched.append(name)
        write_omniglot_zip(folder / name, {"Latin": [1, 2]}, drawers=2)

    monkeypatch.setattr(om, "_download", fake_download)
    with pytest.raises(om.DatasetNotFoundError):
        om.omniglot(tmp_path / "o", sets=["images_background"])
    assert fetched == []
    data = om.omniglot(tmp_path / "o", sets=["images_background"], download=True)
    assert fetched == ["images_background.zip"] and len(data.classes) == 2

    def offline(folder, name):
        raise OSError("network is unreachable")

    monkeypatch.setattr(om, "_download", offline)
    with pytest.raises(om.DatasetNotFoundError, match="download failed .*network is unreachable"):
        om.omniglot(tmp_path / "o", sets=["images_evaluation"], download=True)


def test_corrupt_image_and_corrupt_zip(tmp_path):
    write_omniglot_zip(tmp_path / "images_background_small1.zip", {"Greek": [1, 2]}, drawers=2,
                       corrupt=("Greek", 2, 1))
    with pytest.raises(ValueError, match=r"images_background_small1.zip:.*Greek/character02/.*_01.png .*corrupt"):
        om.omniglot(tmp_path, sets=["images_background_small1"])
    (tmp_path / "images_background_small2.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="images_background_small2.zip cannot be read as a zip.*corrupt"):
        om.omniglot(tmp_path, sets=["images_background_small2"])
    with zipfile.ZipFile(tmp_path / "images_background.zip", "w") as archive:
        archive.writestr("readme.txt", "nothing here")
    with pytest.raises(ValueError, match="not an Omniglot image zip"):
        om.omniglot(tmp_path, sets=["images_background"])


# ---- the group-disjoint split ----------------------------------------------------------------------------

def _assert_group_disjoint(data, split):
    train_groups, test_groups = set(split.train.groups.tolist()), set(split.test.groups.tolist())
    assert train_groups and test_groups and not train_groups & test_groups
    assert train_groups | test_groups == set(data.groups.tolist())
    assert not set(split.train.y.tolist()) & set(split.test.y.tolist())  # class-disjoint too
    index = torch.cat([split.train_index, split.test_index])
    assert torch.equal(torch.sort(index).values, torch.arange(len(data)))
    assert torch.equal(split.test.x, data.x[split.test_index]) and split.kind == "group_disjoint"


def test_group_split_invariants_and_seed(omni_root):
    data = om.omniglot(omni_root, rotations=[0, 180])
    split = GroupDisjointSplit(test_groups=2)(data, seed=0)
    _assert_group_disjoint(data, split)
    assert len(set(split.test.groups.tolist())) == 2
    again = GroupDisjointSplit(test_groups=2)(data, seed=0)
    assert torch.equal(again.test_index, split.test_index)
    held = {frozenset(GroupDisjointSplit(test_groups=2)(data, seed=s).test.groups.tolist()) for s in range(8)}
    assert len(held) > 1  # the seed picks the groups
    half = GroupDisjointSplit(test_groups=0.25)(data, seed=3)
    _assert_group_disjoint(data, half)
    assert len(set(half.test.groups.tolist())) == 1
    # every rotation of a character stays with its alphabet
    names = {data.classes[c].split("/rot")[0] for c in split.test.y.tolist()}
    assert not names & {data.classes[c].split("/rot")[0] for c in split.train.y.tolist()}


def test_group_split_named_groups(omni_root):
    data = om.omniglot(omni_root)
    split = GroupDisjointSplit(held_out=["Greek", "Tagalog"])(data, seed=5)
    _assert_group_disjoint(data, split)
    assert set(group_names(split.test).values()) == {"Greek", "Tagalog"}
    assert torch.equal(GroupDisjointSplit(held_out=["Greek", "Tagalog"])(data, seed=0).test_index, split.test_index)
    by_id = GroupDisjointSplit(held_out=[1, 3])(data, seed=0)
    assert torch.equal(by_id.test_index, split.test_index)
    with pytest.raises(SplitError, match="'Klingon' is not in .*Balinese, Greek, Latin, Tagalog"):
        GroupDisjointSplit(held_out=["Klingon"])(data, seed=0)
    with pytest.raises(SplitError, match="leave at least one"):
        GroupDisjointSplit(held_out=["Balinese", "Greek", "Latin", "Tagalog"])(data, seed=0)


def test_group_split_refuses_data_without_groups():
    with pytest.raises(SplitError, match="has no groups"):
        GroupDisjointSplit()(blobs(), seed=0)
    data = blobs(n_classes=4, per_class=2)
    one_group = LabeledData(x=data.x, y=data.y, classes=data.classes, groups=torch.zeros(8, dtype=torch.int64))
    with pytest.raises(SplitError, match="at least 2"):
        GroupDisjointSplit()(one_group, seed=0)
    mixed = LabeledData(x=data.x, y=data.y, classes=data.classes, groups=torch.arange(8) % 2)
    with pytest.raises(SplitError, match="several groups"):
        GroupDisjointSplit()(mixed, seed=0)
    with pytest.raises(SplitError, match="test_groups"):
        GroupDisjointSplit(test_groups=5)(LabeledData(x=data.x, y=data.y, classes=data.classes,
                                                      groups=data.y.clone()), seed=0)


# ---- the one-shot protocol --------------------------------------------------------------------------------

def _protocol(root, **kw):
    return OmniglotOneShotProtocol(root=str(root), published={"people": 0.045, "siamese_convnet": 0.08}, **kw)


def _train_split(root, image_size=28):
    data = om.omniglot(root, image_size=image_size)
    return AllForTraining()(data, seed=0)


def test_read_runs_follows_the_answer_file(omni_root):
    answers = write_all_runs_zip(omni_root / "all_runs.zip", n_runs=2, n_way=5)
    runs = read_runs(omni_root / "all_runs.zip", (28, 28))
    assert [r.name for r in runs] == ["run01", "run02"]
    for run in runs:
        assert run.train_x.shape == (5, 1, 28, 28) and run.test_x.shape == (5, 1, 28, 28)
        assert run.test_y.tolist() == answers[run.name]
        for i, j in enumerate(run.test_y.tolist()):
            assert torch.equal(run.test_x[i], run.train_x[j])


def test_runs_are_decoded_like_the_training_images(tmp_path):
    """One and the same PNG in a background zip and in all_runs.zip becomes the very same tensor."""
    write_omniglot_zip(tmp_path / "images_background_small1.zip", {"Greek": [1]}, drawers=1)
    with zipfile.ZipFile(tmp_path / "images_background_small1.zip") as archive:
        png = next(archive.read(n) for n in archive.namelist() if n.endswith(".png"))
    with zipfile.ZipFile(tmp_path / "all_runs.zip", "w") as archive:
        archive.writestr("run01/training/class01.png", png)
        archive.writestr("run01/test/item01.png", png)
        archive.writestr("run01/class_labels.txt", "run01/test/item01.png run01/training/class01.png\n")
    for size in (28, (20, 24), None):
        data = om.omniglot(tmp_path, sets=["images_background_small1"], image_size=size)
        run = read_runs(tmp_path / "all_runs.zip", None if size is None else data.input_shape[1:])[0]
        assert torch.equal(run.train_x[0], data.x[0])


def test_oneshot_error_is_zero_when_test_items_copy_their_class(omni_root):
    write_all_runs_zip(omni_root / "all_runs.zip", n_runs=3, n_way=5)
    split = _train_split(omni_root)
    protocol = _protocol(omni_root)
    protocol.check(split)
    result = protocol.evaluate(RawFeatures(), split, RunContext(progress=False), data_seed=0)
    m = result.metrics["oneshot_error"]
    assert m.mean == 0.0 and m.n == 3
    assert sorted(result.metrics) == protocol.metric_names()  # what an objective is checked against
    runs = result.curves["oneshot_runs"]
    assert runs["run"].tolist() == ["run01", "run02", "run03"] and runs["error"].tolist() == [0.0] * 3
    table = result.curves["oneshot_vs_published"]
    assert table.set_index("source").loc["people", "error"] == 0.045
    assert (table["kind"] == "measured").sum() == 1
    assert result.artifacts["oneshot_answers"]["errors"].tolist() == [0.0] * 3


def test_oneshot_error_counts_wrong_items(omni_root):
    write_all_runs_zip(omni_root / "all_runs.zip", n_runs=2, n_way=5, wrong={"run02": 2})
    result = _protocol(omni_root).evaluate(RawFeatures(), _train_split(omni_root), RunContext(progress=False), 0)
    assert result.curves["oneshot_runs"]["error"].tolist() == pytest.approx([0.0, 0.4])
    assert result.metrics["oneshot_error"].mean == pytest.approx(0.2)
    assert result.metrics["oneshot_error"].ci95 > 0


def test_oneshot_applies_the_split_transform(omni_root):
    write_all_runs_zip(omni_root / "all_runs.zip", n_runs=2, n_way=5)
    split = _train_split(omni_root)
    scale = Standardizer.fit(split.train.x)
    seen = []

    def spy(data):
        seen.append(data.x.clone())
        return scale(data)

    standardised = Split(scale(split.train), scale(split.test), split.train_index, split.test_index, split.kind,
                         transform=spy)

    class Recorder(RawFeatures):
        def embed(self, x):
            embedded.append(x.clone())
            return super().embed(x)

    embedded = []
    _protocol(omni_root).evaluate(Recorder(), standardised, RunContext(progress=False), 0)
    runs = read_runs(omni_root / "all_runs.zip", (28, 28))
    assert len(seen) == 2
    for raw, run, used in zip(seen, runs, embedded):
        assert torch.equal(raw, torch.cat([run.train_x, run.test_x]))
        assert torch.allclose(used, (raw - scale.mean) / scale.std)


def test_oneshot_through_the_runner(omni_root, compose_cfg):
    write_all_runs_zip(omni_root / "all_runs.zip", n_runs=2, n_way=5)
    cfg = compose_cfg("dataset=omniglot", "method=raw", "protocol=omniglot_oneshot",
                      f"data_root={omni_root.parent}", "study=oneshot")
    record = execute(cfg)
    assert record["status"] == "ok" and record["metrics"]["oneshot_error"]["mean"] == 0.0
    assert record["config"]["protocol"]["evaluator"]["published"]["people"] == 0.045
    assert record["split"]["n_train"] == 33 and record["split"]["n_test"] == 0
    assert "eval_test_samples_per_s" not in record["throughput"]  # no test side: no images/s to claim
    runs = pd.read_csv(Path(cfg.run_dir) / record["curves"]["oneshot_runs"])
    assert len(runs) == 2
    assert set(record["artifacts"]) == {"oneshot_answers"}


def test_oneshot_checks_before_training(omni_root, tmp_path):
    split = _train_split(omni_root)
    with pytest.raises(om.DatasetNotFoundError, match="all_runs.zip"):
        _protocol(omni_root).check(split)  # no all_runs.zip written
    (omni_root / "all_runs.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        _protocol(omni_root).check(split)
    vectors = AllForTraining()(blobs(), seed=0)
    with pytest.raises(ValueError, match=r"grey images \(1, H, W\)"):
        _protocol(omni_root).check(vectors)
    write_omniglot_zip(tmp_path / "ev" / "images_evaluation.zip", {"Angelic": [1], "Greek": [1]}, drawers=2)
    leaky = AllForTraining()(om.omniglot(tmp_path / "ev", sets=["images_evaluation"]), seed=0)
    with pytest.raises(ValueError, match="evaluation alphabets.*Angelic"):
        _protocol(omni_root).check(leaky)


def test_malformed_answer_file(omni_root):
    with zipfile.ZipFile(omni_root / "all_runs.zip", "w") as archive:
        archive.writestr("run01/training/class01.png", b"")
        archive.writestr("run01/class_labels.txt", "item01 is class01\n")
    with pytest.raises(ValueError, match="class_labels.txt line 1"):
        read_runs(omni_root / "all_runs.zip", (28, 28))


# ---- the real files ---------------------------------------------------------------------------------------

def _real_omniglot_or_skip(*names):
    folder = real_data_root() / "omniglot"
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        if require_real_data():
            pytest.fail(f"real Omniglot is required here but {folder} lacks {missing}")
        pytest.skip(f"real Omniglot not in {folder} (set SIMBENCH_DATA_ROOT)")
    return folder


def test_real_small_background_sets():
    folder = _real_omniglot_or_skip("images_background_small1.zip", "images_background_small2.zip")
    data = om.omniglot(folder)
    assert data.x.shape == (4840, 1, 28, 28) and len(data.classes) == 242
    assert data.counts().tolist() == [20] * 242
    assert sorted(group_names(data).values()) == ["Balinese", "Early_Aramaic", "Greek", "Japanese_(katakana)",
                                                  "Korean", "Latin", "Sanskrit", "Tagalog"]
    split = GroupDisjointSplit(test_groups=3)(data, seed=0)
    _assert_group_disjoint(data, split)
    assert len(split.test.present_classes) >= 20  # enough for 20-way episodes


def test_real_oneshot_runs_with_raw_pixels():
    folder = _real_omniglot_or_skip("images_background_small1.zip", "images_background_small2.zip", "all_runs.zip")
    runs = read_runs(folder / "all_runs.zip", (28, 28))
    assert len(runs) == 20
    for run in runs:
        assert run.train_x.shape == (20, 1, 28, 28) and run.test_x.shape == (20, 1, 28, 28)
        assert sorted(run.test_y.tolist()) == list(range(20))
    split = _train_split(folder)
    scale = Standardizer.fit(split.train.x)
    split = Split(scale(split.train), scale(split.test), split.train_index, split.test_index, split.kind,
                  transform=scale)
    result = _protocol(folder).evaluate(RawFeatures(), split, RunContext(progress=False), 0)
    error = result.metrics["oneshot_error"]
    assert error.n == 20 and 0.5 < error.mean < 0.95  # far better than chance (0.95), far worse than people
    assert np.all(result.artifacts["oneshot_answers"]["errors"] <= 1.0)


def test_missing_runs_file_names_the_protocol_options(tmp_path):
    """The one-shot runs are the protocol's file: its error points at protocol.evaluator.*, not dataset.source.*."""
    with pytest.raises(om.DatasetNotFoundError, match=r"protocol\.evaluator\.download=true") as info:
        OmniglotOneShotProtocol(root=str(tmp_path)).runs_path()
    assert "dataset.source" not in str(info.value) and "all_runs.zip" in str(info.value)
