"""The ORL faces loader on PGM folders the tests write in the published layout, its errors, and the real
files in the shared data folder when they are there."""
import pytest
import torch

from benchmarks.run import execute
from conftest import require_real_data
from data_builders import real_data_root, write_orl, write_pgm
from datasets.errors import DatasetNotFoundError
from datasets.orl import orl


def test_reads_subject_folders_in_numeric_order(tmp_path):
    write_orl(tmp_path / "att_faces", subjects=(1, 2, 10), per_subject=4)
    (tmp_path / "att_faces" / "README").write_text("not a subject")
    data = orl(tmp_path / "att_faces")
    assert data.classes == ["s1", "s2", "s10"] and data.counts().tolist() == [4, 4, 4]
    assert data.x.shape == (12, 1, 112, 92) and data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    assert data.groups is None and data.name == "orl"
    # subject N's image M is grey level 20 N + M, not inverted
    assert torch.allclose(data.x[data.y == 2][:, 0, 0, 0], torch.tensor([201, 202, 203, 204]) / 255.0)


def test_resize_and_max_per_class(tmp_path):
    write_orl(tmp_path, subjects=(1, 2), per_subject=10)
    assert orl(tmp_path, image_size=[56, 46]).input_shape == (1, 56, 46)
    assert orl(tmp_path, image_size=32).input_shape == (1, 32, 32)
    small = orl(tmp_path, max_per_class=3)
    assert small.counts().tolist() == [3, 3]
    # the first three by number (1, 2, 3), not by name (1, 10, 2)
    assert torch.allclose(small.x[small.y == 0][:, 0, 0, 0], torch.tensor([21, 22, 23]) / 255.0)


def test_missing_folder_names_the_ways(tmp_path):
    for where in (tmp_path / "absent", tmp_path):  # no folder; a folder with no sN inside
        with pytest.raises(DatasetNotFoundError) as info:
            orl(where)
        message = str(info.value)
        assert str(where) in message and "data_root=" in message and "SIMBENCH_DATA_ROOT" in message
        assert "dataset.source.root=" in message


def test_empty_subject_and_corrupt_image(tmp_path):
    write_orl(tmp_path, subjects=(1,), per_subject=2)
    (tmp_path / "s2").mkdir()
    with pytest.raises(ValueError, match="s2 holds no M.pgm"):
        orl(tmp_path)
    (tmp_path / "s2" / "1.pgm").write_bytes(b"P5\n92 112\n255\n\x00\x01")  # truncated pixel data
    with pytest.raises(ValueError, match=r"s2/1.pgm is not a readable image .*corrupt"):
        orl(tmp_path)
    write_pgm(tmp_path / "s2" / "1.pgm", torch.zeros(50, 40, dtype=torch.uint8).numpy())
    with pytest.raises(ValueError, match="different sizes"):
        orl(tmp_path)


def _real_orl_or_skip():
    folder = real_data_root() / "att_faces"
    if not (folder / "s40" / "10.pgm").is_file():
        if require_real_data():
            pytest.fail(f"the real ORL faces are required here but {folder} is missing")
        pytest.skip(f"ORL faces not in {folder} (set SIMBENCH_DATA_ROOT)")
    return folder


def test_real_orl_verification(compose_cfg):
    folder = _real_orl_or_skip()
    data = orl(folder, image_size=None)
    assert data.x.shape == (400, 1, 112, 92) and data.classes == [f"s{n}" for n in range(1, 41)]
    assert data.counts().tolist() == [10] * 40
    record = execute(compose_cfg("dataset=orl", "method=raw", "protocol=verification",
                                 f"data_root={folder.parent}"))
    assert record["status"] == "ok" and record["split"]["n_test"] == 200
    assert record["metrics"]["auc"]["mean"] > 0.8 and record["metrics"]["eer"]["mean"] < 0.25
