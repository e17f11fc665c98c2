"""The speed benchmark's script (``benchmarks/speed.py``) at ``--quick`` sizes, one part at a time: it runs,
writes the CSV with the expected columns and finite positive numbers, and its side-by-side checks hold
(identical few-shot accuracies, identical triplet losses). Timings are never asserted on."""
import math
import subprocess
import sys

import pandas as pd
import pytest

from benchmarks import speed

ROWS = {"lmnn": ["lmnn"], "mmc": ["mmc", "mmc_diag"], "fewshot": ["fewshot"], "triplet": ["triplet"]}


@pytest.mark.parametrize("part", speed.PARTS)
def test_quick_run_writes_the_expected_csv(part, tmp_path, capsys):
    if speed.PEERS[part]:
        pytest.importorskip(speed.PEERS[part])
    out = tmp_path / "speed.csv"
    returned = speed.main(["--quick", "--only", part, "--repeats", "1", "--threads", "1", "--out", str(out)])
    frame = pd.read_csv(out, keep_default_na=False, na_values=[""])  # "n/a" stays a string
    assert list(frame.columns) == speed.COLUMNS
    assert list(frame["row"]) == ROWS[part] == list(returned["row"])
    for r in frame.itertuples():
        for value in (r.ours, r.peer_value, r.speedup):
            assert math.isfinite(value) and value > 0, r
        # the ratio is "ours faster by": time peer / time ours, or rate ours / rate peer
        expected = r.peer_value / r.ours if r.unit == "fit s" else r.ours / r.peer_value
        assert r.speedup == pytest.approx(expected)
        assert math.isfinite(r.ours_quality) and math.isfinite(r.peer_quality)
        if r.quality in ("knn_error", "acc_5w1s"):
            assert 0 <= r.ours_quality <= 1 and 0 <= r.peer_quality <= 1
        assert r.target_met in (("yes", "no") if math.isfinite(r.target) else ("n/a",))
    if part == "fewshot":  # the same episodes and backbone: the same accuracy on every episode
        assert frame.loc[0, "agreement"] == 0.0
        assert frame.loc[0, "ours_quality"] == pytest.approx(frame.loc[0, "peer_quality"], abs=1e-9)
    if part == "triplet":  # the same batches and initial weights: the same losses
        assert frame.loc[0, "agreement"] <= 1e-5
    printed = capsys.readouterr().out
    assert "QUICK" in printed and all(name in printed for name in ROWS[part])


def test_an_unknown_part_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        speed.main(["--only", "lmnn,nope"])
    assert exit_info.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--help"], capture_output=True, text=True,
                          cwd=speed.CONF.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    for option in ("--only", "--quick", "--out", "--threads", "--dataset", "--repeats"):
        assert option in done.stdout


def test_a_row_whose_peer_is_missing_is_skipped_and_said_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(speed.PEERS, "triplet", "no_such_peer_library")
    frame = speed.main(["--quick", "--only", "triplet", "--threads", "1", "--out", str(tmp_path / "s.csv")])
    assert frame.empty and list(pd.read_csv(tmp_path / "s.csv").columns) == speed.COLUMNS
    assert "triplet: skipped, its peer no_such_peer_library is not installed" in capsys.readouterr().out
