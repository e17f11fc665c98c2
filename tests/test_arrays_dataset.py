"""dataset=arrays: a researcher's own .npz or .csv runs under every protocol with no code, gives the very
numbers of the same data loaded by the suite, and a bad file fails before any training, naming the fix."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from benchmarks.run import execute
from datasets.arrays import ArrayFileError, arrays
from datasets.errors import DatasetNotFoundError

PROTOCOLS = ["fewshot", "retrieval", "verification", "knn"]
FAST = ["budget.iterations=30", "budget.episodes=20", "threads=1", "fit_cache=false"]


def _digits_npz(path: Path) -> Path:
    bunch = load_digits()
    np.savez(path, x=bunch.data, y=bunch.target, class_names=np.array([str(c) for c in bunch.target_names]))
    return path


def _digits_csv(path: Path) -> Path:
    bunch = load_digits()
    frame = pd.DataFrame(bunch.data, columns=[f"pixel{i}" for i in range(64)])
    frame.insert(0, "digit", bunch.target)
    frame.to_csv(path, index=False)
    return path


def _metrics(record: dict) -> dict:
    return {k: round(v["mean"], 12) for k, v in record["metrics"].items()}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_npz_and_csv_run_every_protocol_and_match_the_built_in_digits(compose_cfg, tmp_path, protocol):
    npz, csv = _digits_npz(tmp_path / "my_digits.npz"), _digits_csv(tmp_path / "my_digits_csv.csv")
    for method in ("raw", "lmnn", "protonet"):
        common = [f"method={method}", f"protocol={protocol}", *FAST]
        from_npz = execute(compose_cfg("dataset=arrays", f"dataset.path={npz}", *common))
        from_csv = execute(compose_cfg("dataset=arrays", f"dataset.path={csv}", "dataset.source.label_column=digit",
                                       *common))
        built_in = execute(compose_cfg("dataset=digits", *common))
        assert from_npz["status"] == from_csv["status"] == "ok"
        assert (from_npz["dataset"], from_csv["dataset"]) == ("my_digits", "my_digits_csv")
        # the same samples, labels and seeds: the same split, the same episodes, the same numbers
        assert from_npz["split"]["test_index_sha"] == built_in["split"]["test_index_sha"]
        assert _metrics(from_npz) == pytest.approx(_metrics(built_in), abs=1e-6)
        assert _metrics(from_csv) == pytest.approx(_metrics(built_in), abs=1e-6)


def test_strings_groups_and_grey_images_are_read(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", x=rng.random((12, 5, 5)), y=np.array(["cat", "dog", "owl"] * 4),
             groups=np.array([0, 0, 1] * 4))
    data = arrays(tmp_path / "img.npz")
    assert data.x.shape == (12, 1, 5, 5) and data.classes == ["cat", "dog", "owl"]
    assert data.y.tolist()[:3] == [0, 1, 2] and data.groups.tolist()[:3] == [0, 0, 1] and data.name == "img"


def test_a_csv_with_text_labels_reads_as_the_npz_with_the_same_labels(tmp_path):
    """Species names, subject ids: a csv's label column in text (pandas reads it as Python strings) gives the
    classes in sorted order of the names, as the same labels in an .npz do; a row without a label is named."""
    rng = np.random.default_rng(0)
    x, names = rng.random((30, 3)), np.array(["setosa", "virginica", "versicolor"] * 10)
    np.savez(tmp_path / "flowers.npz", x=x, y=names)
    pd.DataFrame(x, columns=["a", "b", "c"]).assign(species=names).to_csv(tmp_path / "flowers.csv", index=False)
    from_csv = arrays(tmp_path / "flowers.csv", label_column="species")
    from_npz = arrays(tmp_path / "flowers.npz")
    assert from_csv.classes == from_npz.classes == ["setosa", "versicolor", "virginica"]
    assert from_csv.y.tolist() == from_npz.y.tolist() and from_csv.y.tolist()[:3] == [0, 2, 1]
    assert np.allclose(from_csv.x.numpy(), from_npz.x.numpy())
    gap = pd.DataFrame(x, columns=["a", "b", "c"]).assign(species=names)
    gap.loc[4, "species"] = None
    gap.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(ArrayFileError, match=r"gap\.csv: the labels \(y\) must be integers or strings; found missing "
                                             r"values or a mix of text and numbers"):
        arrays(tmp_path / "gap.csv", label_column="species")


def test_a_changed_file_is_a_new_data_set(compose_cfg, tmp_path):
    path = _digits_npz(tmp_path / "d.npz")
    before = compose_cfg("dataset=arrays", f"dataset.path={path}").dataset.content_sha256
    bunch = load_digits()
    np.savez(path, x=bunch.data[:-1], y=bunch.target[:-1])
    after = compose_cfg("dataset=arrays", f"dataset.path={path}").dataset.content_sha256
    assert before != after and len(before) == 16


def test_a_run_reads_its_file_once_for_the_digest_and_a_rewrite_of_the_same_size_is_seen(compose_cfg, tmp_path,
                                                                                          monkeypatch):
    """The run's identity, its folder name and the fit-cache key all resolve the file's digest: one read."""
    import os
    path = _digits_npz(tmp_path / "d.npz")
    reads, real_open = [], Path.open

    def counting_open(self, *args, **kwargs):
        if self == path:
            reads.append(args)
        return real_open(self, *args, **kwargs)
    monkeypatch.setattr(Path, "open", counting_open)
    record = execute(compose_cfg("dataset=arrays", f"dataset.path={path}", "method=raw", "protocol=knn"))
    assert record["status"] == "ok" and len(reads) == 1
    before = record["config"]["dataset"]["content_sha256"]
    with open(path, "rb") as fh:  # the builtin open: not counted
        data = bytearray(fh.read())
    data[-1] ^= 0xFF  # the same size, other bytes
    stamp = path.stat().st_mtime_ns
    with open(path, "wb") as fh:
        fh.write(bytes(data))
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # a later modification time, whatever the clock's grain
    assert compose_cfg("dataset=arrays", f"dataset.path={path}").dataset.content_sha256 != before
    assert len(reads) == 2


def test_two_files_of_one_name_do_not_replace_each_others_records(compose_cfg, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, other = _digits_npz(tmp_path / "a" / "mine.npz"), tmp_path / "b" / "mine.npz"
    bunch = load_digits()
    np.savez(other, x=bunch.data[:-10], y=bunch.target[:-10])  # other data, the same file name
    common = ["method=raw", "protocol=knn", *FAST]
    kept = execute(compose_cfg("dataset=arrays", f"dataset.path={first}", *common))
    record = Path(compose_cfg("dataset=arrays", f"dataset.path={first}", *common).run_dir) / "record.json"
    written = record.read_bytes()
    with pytest.raises(ValueError, match=r"read from .*a/mine.npz, and this run's .*b/mine.npz is another file of "
                                         r"the same name; give this one its own name \(dataset.name=...\)"):
        execute(compose_cfg("dataset=arrays", f"dataset.path={other}", *common))
    assert record.read_bytes() == written and not (record.parent / "record.previous.json").exists()
    renamed = execute(compose_cfg("dataset=arrays", f"dataset.path={other}", "dataset.name=mine_b", *common))
    assert renamed["status"] == "ok" and renamed["dataset"] == "mine_b"
    assert renamed["split"]["n_test"] != kept["split"]["n_test"]
    # the same file changed in place is still the same data set: its new run replaces the old record
    np.savez(first, x=bunch.data[:-20], y=bunch.target[:-20])
    changed = execute(compose_cfg("dataset=arrays", f"dataset.path={first}", *common))
    assert changed["status"] == "ok" and (record.parent / "record.previous.json").exists()


def _bad_files(tmp: Path):
    """(file, overrides, what the error must say): each bad file a user could give."""
    x, y = np.random.default_rng(0).random((40, 4)), np.repeat(np.arange(4), 10)
    cases = []

    def npz(name, **arrays_):
        np.savez(tmp / name, **arrays_)
        return tmp / name

    def csv(name, frame):
        frame.to_csv(tmp / name, index=False)
        return tmp / name

    good = pd.DataFrame(x, columns=list("abcd")).assign(label=y)
    cases.append((tmp / "absent.npz", [], "does not exist: give dataset.path="))
    (tmp / "data.txt").write_text("1 2 3")
    cases.append((tmp / "data.txt", [], "reads .npz or .csv files"))
    cases.append((npz("no_y.npz", x=x), [], "no array named y"))
    cases.append((npz("lengths.npz", x=x, y=y[:-3]), [], "x has 40 samples but y has 37 labels"))
    nan = x.copy()
    nan[7, 2] = np.nan
    cases.append((npz("nan.npz", x=nan, y=y), [], "1 sample(s) have NaN or infinite features (the first: sample 7)"))
    inf = x.copy()
    inf[3, 0] = np.inf
    cases.append((csv("inf.csv", pd.DataFrame(inf, columns=list("abcd")).assign(label=y)), [], "NaN or infinite"))
    cases.append((npz("one_class.npz", x=x, y=np.zeros(40, dtype=int)), [], "at least 2 classes"))
    cases.append((npz("objects.npz", x=x, y=np.array([object()] * 40, dtype=object)), [], "holds Python objects"))
    (tmp / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    cases.append((tmp / "broken.npz", [], "not a readable .npz file"))
    cases.append((csv("text.csv", good.assign(colour=["red"] * 40)), [], "feature column(s) colour are not numeric"))
    cases.append((csv("nolabel.csv", good), ["dataset.source.label_column=species"],
                  "no column 'species' for the labels (its columns: a, b, c, d, label)"))
    (tmp / "empty.csv").write_text("")
    cases.append((tmp / "empty.csv", [], "not a readable csv file"))
    cases.append((npz("names.npz", x=x, y=y, class_names=np.array(["a", "b"])), [], "must hold integers 0..1"))
    # a class with fewer samples than 5-shot + 15-query episodes ask for
    cases.append((npz("few.npz", x=np.random.default_rng(1).random((120, 4)), y=np.repeat(np.arange(10), 12)),
                  ["protocol=fewshot"], "5-shot 15-query episodes need 20 samples in each of 5 classes, but only 0 "
                  "classes have that many (the smallest class has 12). Lower protocol.evaluator.shots or "
                  "protocol.evaluator.n_query (protocol.evaluator.n_query=7 fits)."))
    return cases


def test_every_bad_file_fails_before_training_with_the_fix(compose_cfg, tmp_path):
    seen = []
    for path, extra, message in _bad_files(tmp_path):
        cfg = compose_cfg("dataset=arrays", f"dataset.path={path}", "method=protonet", "protocol=knn", *FAST,
                          f"study=bad_{path.stem}", *extra)
        with pytest.raises((ArrayFileError, DatasetNotFoundError, ValueError)) as info:
            execute(cfg)
        assert message in str(info.value), (path.name, str(info.value))
        record = json.loads((Path(cfg.run_dir) / "record.json").read_text())
        assert record["status"] == "failed" and "fit_s" not in record["timings"]  # nothing was trained
        seen.append((path.name, type(info.value).__name__, str(info.value)))
    assert len(seen) == 14
