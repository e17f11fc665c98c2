"""The CPU thread count is part of a run's configuration: set before any work, recorded, pinned by every
preset whose reference is committed."""
from pathlib import Path

import pytest
import torch

from benchmarks.environment import pick_device, set_threads
from benchmarks.run import execute

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_run_uses_and_records_its_thread_count(compose_cfg, restore_threads):
    record = execute(compose_cfg("method=raw", "threads=1"))
    assert record["status"] == "ok" and record["threads"] == 1 and torch.get_num_threads() == 1
    assert execute(compose_cfg("method=raw", "threads=null", "study=t2"))["threads"] == torch.get_num_threads()


@pytest.mark.parametrize("bad", [0, -2, 1.5, "two", True])
def test_a_bad_thread_count_is_a_clear_error(bad, restore_threads):
    with pytest.raises(ValueError, match="threads must be a positive integer, or null"):
        set_threads(bad)


@pytest.mark.parametrize("study", sorted(p.stem for p in (ROOT / "results" / "reference").glob("*.csv")))
def test_every_preset_with_a_reference_pins_its_thread_count(study):
    from test_regress import composed_preset

    threads = composed_preset(study).threads
    assert isinstance(threads, int) and threads >= 1


def test_cpu_with_an_index_is_the_cpu():
    """cpu:0 names the one CPU device: it becomes plain cpu, so a fit saved under it loads back from the cache
    (torch.load cannot restore storages tagged cpu:0)."""
    assert pick_device("cpu:0") == torch.device("cpu") and pick_device("cpu:0").index is None


def test_a_gpu_that_is_not_there_is_named(monkeypatch):
    """device=cuda:N names the device asked for, and an index past the visible GPUs is refused with their
    range (before, torch failed later, inside the first copy to the device)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"device=cuda:0 was asked for but no GPU is visible"):
        pick_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(RuntimeError, match=r"device=cuda:2 was asked for but 2 GPU\(s\) are visible "
                                           r"\(cuda:0 to cuda:1\)"):
        pick_device("cuda:2")
    assert pick_device("cuda:1") == torch.device("cuda:1")
    assert pick_device("cuda") == torch.device("cuda")
