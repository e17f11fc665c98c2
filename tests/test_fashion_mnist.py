"""The Fashion-MNIST loader on small IDX files the tests write, its errors, and the real files when present."""
from pathlib import Path

import pytest
import torch

import datasets.fashion_mnist as fm
from benchmarks.run import execute
from conftest import require_real_data
from helpers import write_fake_fashion, write_idx


@pytest.mark.parametrize("compress", [True, False])
def test_reads_idx_files_from_root(tmp_path, compress):
    write_fake_fashion(tmp_path, per_class=5, compress=compress)
    data = fm.fashion_mnist(root=str(tmp_path))
    assert data.x.shape == (70, 1, 28, 28) and data.y.dtype == torch.int64
    assert data.classes[0] == "T-shirt/top" and data.counts().tolist() == [7] * 10
    assert torch.allclose(data.x[data.y == 3], torch.tensor(30 / 255.0))
    assert len(fm.fashion_mnist(root=str(tmp_path), parts=("test",))) == 20
    assert fm.fashion_mnist(root=str(tmp_path), max_per_class=2).counts().tolist() == [2] * 10


def test_nothing_found_names_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(fm.DatasetNotFoundError) as info:
        fm.fashion_mnist(root=None, download=False, download_root=str(tmp_path))
    message = str(info.value)
    assert "dataset.source.root=" in message and "apt-get install -y dataset-fashion-mnist" in message
    assert "dataset.source.download=true" in message


def test_corrupt_and_truncated_files(tmp_path):
    write_fake_fashion(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    write_idx(tmp_path / "train-labels-idx1-ubyte", __import__("numpy").arange(3))  # wrong count
    with pytest.raises(ValueError, match="3 labels|labels"):
        fm.fashion_mnist(root=str(tmp_path))
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        fm.read_idx(bad)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="broken.gz cannot be read .* corrupt"):
        fm.read_idx(broken)
    truncated = tmp_path / "trunc"
    truncated.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(ValueError, match="truncated"):
        fm.read_idx(truncated)


def _real_fashion_or_skip():
    if not all((fm.DEBIAN_DIR / f"{stem}.gz").is_file() for pair in fm.FILES.values() for stem in pair):
        if require_real_data():
            pytest.fail(f"real Fashion-MNIST is required here but {fm.DEBIAN_DIR} is missing")
        pytest.skip(f"Fashion-MNIST not installed in {fm.DEBIAN_DIR} (apt-get install -y dataset-fashion-mnist)")


def test_real_fashion_mnist_end_to_end(compose_cfg):
    _real_fashion_or_skip()
    data = fm.fashion_mnist(max_per_class=None)
    assert data.x.shape == (70000, 1, 28, 28) and data.counts().tolist() == [7000] * 10
    cfg = compose_cfg("dataset=fashion_mnist", "dataset.source.max_per_class=60", "backbone=conv4",
                      "method=untrained", "protocol=retrieval")
    record = execute(cfg)
    assert record["status"] == "ok" and record["split"]["n_test"] == 300
    assert record["metrics"]["p_at_1"]["mean"] > 0.5  # chance is 0.2 with 5 held-out classes
