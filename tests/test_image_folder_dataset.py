"""dataset=image_folder: a folder of one sub-folder of images per class (optionally grouped) runs under every
protocol with no code; a bad folder fails at load time naming what to fix."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from benchmarks.run import execute
from datasets.errors import DatasetNotFoundError
from datasets.image_files import ImageDecodeError
from datasets.image_folder import ImageFolderError, image_folder

SMALL = ["dataset.source.transform.resize=null", "dataset.source.transform.crop=8",
         "dataset.source.transform.grey=true", "backbone=mlp", "budget.iterations=30", "budget.episodes=20",
         "threads=1", "fit_cache=false"]


def _write_digits(root: Path, per_class: int = 40, grouped: bool = False) -> Path:
    bunch = load_digits()
    for digit in range(10):
        group = f"{'even' if digit % 2 == 0 else 'odd'}/" if grouped else ""
        folder = root / f"{group}digit{digit}"
        folder.mkdir(parents=True)
        for k, image in enumerate(bunch.images[bunch.target == digit][:per_class]):
            Image.fromarray((image * 15).astype(np.uint8), mode="L").save(folder / f"{k:03d}.png")
    return root


@pytest.mark.parametrize("protocol", ["fewshot", "retrieval", "verification", "knn"])
def test_a_folder_of_pngs_runs_every_protocol(compose_cfg, tmp_path, protocol):
    root = _write_digits(tmp_path / "pngs")
    for method in ("raw", "lmnn", "protonet"):
        record = execute(compose_cfg("dataset=image_folder", f"dataset.root={root}", f"method={method}",
                                     f"protocol={protocol}", *SMALL))
        assert record["status"] == "ok" and record["dataset"] == "pngs"
        assert record["split"]["n_train"] + record["split"]["n_test"] == 400
        first = next(iter(record["metrics"].values()))["mean"]
        assert 0.0 <= first <= 1.0
    if protocol == "fewshot":  # raw pixels of digits separate 5 held-out digits well above chance (0.2)
        raw = execute(compose_cfg("dataset=image_folder", f"dataset.root={root}", "method=raw", "protocol=fewshot",
                                  *SMALL))
        assert raw["metrics"]["acc_5w5s"]["mean"] > 0.6


def test_groups_above_the_classes_drive_group_disjoint_splits(compose_cfg, tmp_path):
    root = _write_digits(tmp_path / "grouped", per_class=20, grouped=True)
    data = image_folder(root, verify_images="header")
    assert data.classes[:2] == ["even/digit0", "even/digit2"] and data.groups.unique().tolist() == [0, 1]
    assert data.x.shape[0] == 200
    record = execute(compose_cfg("dataset=image_folder", f"dataset.root={root}", "method=raw",
                                 "protocol=fewshot_alphabets", "protocol.evaluator.split.test_groups=1", *SMALL))
    assert record["status"] == "ok"
    held_out = {data.classes[c].split("/")[0] for c in record["split"]["test_classes"]}
    trained = {data.classes[c].split("/")[0] for c in record["split"]["train_classes"]}
    assert len(held_out) == 1 and held_out.isdisjoint(trained)


def test_bad_folders_fail_at_load_time_with_the_fix(compose_cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_images" / "cat").mkdir(parents=True)
    (tmp_path / "no_images" / "cat" / "notes.txt").write_text("not an image")
    broken = _write_digits(tmp_path / "broken", per_class=3)
    (broken / "digit3" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    mixed = _write_digits(tmp_path / "mixed", per_class=3)
    (mixed / "extra" / "inner").mkdir(parents=True)
    cases = [(tmp_path / "absent", DatasetNotFoundError, "is not a folder: give dataset.root="),
             (tmp_path / "empty", ImageFolderError, "holds no class folders"),
             (tmp_path / "no_images", ImageFolderError, "(class cat) holds no images"),
             (broken, ImageDecodeError, "001.png is not a readable image"),
             (mixed, ImageFolderError, "mixes class folders with folders of folders (extra)")]
    for root, error, message in cases:
        cfg = compose_cfg("dataset=image_folder", f"dataset.root={root}", "method=protonet", "protocol=knn",
                          *SMALL, f"study=bad_{root.name}")
        with pytest.raises(error, match=None) as info:
            execute(cfg)
        assert message in str(info.value), str(info.value)
        record = json.loads((Path(cfg.run_dir) / "record.json").read_text())
        assert record["status"] == "failed" and "fit_s" not in record["timings"]


def test_a_changed_folder_is_a_new_data_set(compose_cfg, tmp_path):
    root = _write_digits(tmp_path / "d", per_class=3)
    before = compose_cfg("dataset=image_folder", f"dataset.root={root}").dataset.listing_sha256
    (root / "digit0" / "000.png").unlink()
    assert compose_cfg("dataset=image_folder", f"dataset.root={root}").dataset.listing_sha256 != before
