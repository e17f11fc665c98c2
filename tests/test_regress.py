"""The regression check: passes on equal numbers, fails on a planted drop and on a missing metric."""
import pandas as pd
import pytest

from benchmarks.regress import main


def _leaderboard(path, acc=0.80, eer=0.20):
    rows = [{"dataset": "digits", "protocol": "fewshot", "method": "protonet", "metric": "acc_5w1s", "mean": acc,
             "ci95": 0.01, "n_seeds": 3},
            {"dataset": "digits", "protocol": "verification", "method": "protonet", "metric": "eer", "mean": eer,
             "ci95": 0.01, "n_seeds": 3}]
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path / "leaderboard.csv", index=False)


@pytest.fixture
def results(tmp_path):
    _leaderboard(tmp_path / "s")
    assert main(["s", "--results", str(tmp_path), "--update"]) == 0
    return tmp_path


def test_unchanged_passes(results):
    assert main(["s", "--results", str(results)]) == 0


def test_small_noise_within_tolerance_passes(results):
    _leaderboard(results / "s", acc=0.79, eer=0.205)
    assert main(["s", "--results", str(results)]) == 0


def test_planted_drop_fails_and_is_listed(results, capsys):
    _leaderboard(results / "s", acc=0.70)
    assert main(["s", "--results", str(results)]) == 1
    out = capsys.readouterr().out
    assert "DROPPED" in out and "acc_5w1s" in out


def test_rise_of_a_lower_is_better_metric_fails(results, capsys):
    _leaderboard(results / "s", eer=0.30)
    assert main(["s", "--results", str(results)]) == 1
    assert "eer" in capsys.readouterr().out


def test_improvement_passes(results):
    _leaderboard(results / "s", acc=0.95, eer=0.05)
    assert main(["s", "--results", str(results)]) == 0


def test_missing_metric_fails(results, capsys):
    frame = pd.read_csv(results / "s" / "leaderboard.csv")
    frame[frame["metric"] != "eer"].to_csv(results / "s" / "leaderboard.csv", index=False)
    assert main(["s", "--results", str(results)]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_fewer_seeds_fails(results, capsys):
    frame = pd.read_csv(results / "s" / "leaderboard.csv")
    frame.loc[frame["metric"] == "acc_5w1s", "n_seeds"] = 2
    frame.to_csv(results / "s" / "leaderboard.csv", index=False)
    assert main(["s", "--results", str(results)]) == 1
    assert "FEWER SEEDS" in capsys.readouterr().out


@pytest.mark.parametrize("study", ["smoke_digits", "ci_fashion_mnist", "ci_omniglot", "ci_orl_faces",
                                   "fashion_mnist", "omniglot", "orl_faces"])
def test_committed_reference_covers_its_preset(study):
    """Each committed reference holds exactly the methods and protocols its preset sweeps."""
    from pathlib import Path

    from omegaconf import OmegaConf
    root = Path(__file__).resolve().parent.parent
    ref = pd.read_csv(root / "results" / "reference" / f"{study}.csv")
    assert {"dataset", "protocol", "method", "metric", "mean"} <= set(ref.columns)
    params = OmegaConf.load(root / "conf" / "experiment" / f"{study}.yaml").hydra.sweeper.params
    assert set(ref["method"]) == set(str(params.method).split(","))
    assert set(ref["protocol"]) == set(str(params.protocol).split(","))
