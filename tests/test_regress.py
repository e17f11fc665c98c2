"""The regression check: passes on equal numbers, fails on a planted drop and on a missing metric."""
import re
from pathlib import Path

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


def _with_new_method(path, acc=0.80):
    frame = pd.read_csv(path / "leaderboard.csv")
    frame.loc[frame["metric"] == "acc_5w1s", "mean"] = acc
    new = frame.assign(method="sdn", mean=[0.3, 0.6])
    pd.concat([frame, new]).to_csv(path / "leaderboard.csv", index=False)


def test_add_appends_the_missing_rows_and_keeps_the_others(results):
    before = pd.read_csv(results / "reference" / "s.csv")
    _with_new_method(results / "s", acc=0.79)  # within tolerance: the reference keeps its own 0.80
    assert main(["s", "--results", str(results), "--add"]) == 0
    after = pd.read_csv(results / "reference" / "s.csv")
    pd.testing.assert_frame_equal(after.iloc[:len(before)], before)
    added = after.iloc[len(before):]
    assert list(added["method"]) == ["sdn", "sdn"] and list(added["mean"]) == [0.3, 0.6]
    assert main(["s", "--results", str(results)]) == 0


def test_add_refuses_when_a_held_row_dropped(results, capsys):
    before = (results / "reference" / "s.csv").read_text()
    _with_new_method(results / "s", acc=0.60)
    assert main(["s", "--results", str(results), "--add"]) == 1
    assert "acc_5w1s" in capsys.readouterr().err
    assert (results / "reference" / "s.csv").read_text() == before


def test_also_accept_keeps_the_worse_of_two_environments(results, capsys):
    first = pd.read_csv(results / "s" / "leaderboard.csv")  # acc 0.80, EER 0.20: the reference's run
    with_sdn = pd.concat([first, first.iloc[:1].assign(method="sdn", mean=0.3)])
    second = with_sdn.assign(mean=[0.70, 0.10, 0.3])  # accuracy worse, EER better, in the other environment
    second.to_csv(results / "s" / "leaderboard.csv", index=False)
    assert main(["s", "--results", str(results), "--also-accept"]) == 0
    assert "0.8000" in capsys.readouterr().out  # the lowered row is listed with its old value
    ref = pd.read_csv(results / "reference" / "s.csv").set_index(["method", "metric"])["mean"]
    assert (ref[("protonet", "acc_5w1s")], ref[("protonet", "eer")], ref[("sdn", "acc_5w1s")]) == (0.70, 0.20, 0.3)
    assert main(["s", "--results", str(results)]) == 0  # the second environment passes
    with_sdn.to_csv(results / "s" / "leaderboard.csv", index=False)
    assert main(["s", "--results", str(results)]) == 0  # and so does the first
    with_sdn.assign(mean=[0.60, 0.20, 0.3]).to_csv(results / "s" / "leaderboard.csv", index=False)
    assert main(["s", "--results", str(results)]) == 1  # a drop below both still fails


def test_also_accept_refuses_a_run_on_fewer_seeds(results, capsys):
    before = (results / "reference" / "s.csv").read_text()
    frame = pd.read_csv(results / "s" / "leaderboard.csv").assign(mean=[0.5, 0.5], n_seeds=1)
    frame.to_csv(results / "s" / "leaderboard.csv", index=False)
    assert main(["s", "--results", str(results), "--also-accept"]) == 1
    assert "fewer seeds" in capsys.readouterr().err
    assert (results / "reference" / "s.csv").read_text() == before


def test_qualified_error_rates_are_lower_is_better(tmp_path):
    rows = [{"dataset": "digits", "protocol": "set_generation", "method": "sdn", "metric": m, "mean": v, "ci95": 0.01,
             "n_seeds": 1} for m, v in (("eer_reconstructed", 0.27), ("auc_reconstructed", 0.80))]
    (tmp_path / "g").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "g" / "leaderboard.csv", index=False)
    assert main(["g", "--results", str(tmp_path), "--update"]) == 0
    rows[0]["mean"] = 0.95  # the error rate rose: a drop, whatever the protocol's tolerance
    pd.DataFrame(rows).to_csv(tmp_path / "g" / "leaderboard.csv", index=False)
    assert main(["g", "--results", str(tmp_path)]) == 1
    rows[0]["mean"] = 0.05  # it fell: better
    pd.DataFrame(rows).to_csv(tmp_path / "g" / "leaderboard.csv", index=False)
    assert main(["g", "--results", str(tmp_path)]) == 0


def _swept_method_names(params) -> set[str]:
    """The method names a preset's sweep produces: every combination of ``method`` and the ``method.*``
    overrides it sweeps, composed through Hydra (a name may depend on them, e.g. dc_k${n_learners})."""
    import itertools

    from hydra import compose, initialize_config_dir

    from conftest import CONF
    keys = ["method"] + [k for k in params if str(k).startswith("method.")]
    values = [str(params[k]).split(",") for k in keys]
    names = set()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for combo in itertools.product(*values):
            cfg = compose(config_name="config", overrides=[f"{k}={v}" for k, v in zip(keys, combo)])
            names.add(str(cfg.method.name))
    return names


REFERENCES = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "results" / "reference").glob("*.csv"))


def test_every_study_ci_regresses_has_a_reference():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    regressed = set(re.findall(r"benchmarks\.regress (\w+)", ci))
    for loop in re.findall(r"for study in ([\w ]+); do", ci):
        regressed |= set(loop.split())
    regressed.discard("$study")
    for suite in re.findall(r"benchmarks\.suite (\w+) --regress", ci):  # a leaderboard regresses its members
        from benchmarks.suite import load_suite

        regressed |= {m["experiment"] for m in load_suite(suite)["studies"]}
    assert {"smoke_digits", "ci_fashion_mnist", "ci_set_retrieval_fashion", "set_retrieval_digits", "set_generation_digits",
            "ci_set_generation_fashion"} <= regressed
    assert regressed <= set(REFERENCES)


def composed_preset(study: str):
    """The preset ``experiment=<study>`` as Hydra composes it (so a preset that extends another one has
    its parent's sweep and settings), with the hydra node."""
    from hydra import compose, initialize_config_dir

    from conftest import CONF
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"experiment={study}"], return_hydra_config=True)


@pytest.mark.parametrize("study", REFERENCES)
def test_committed_reference_covers_its_preset(study):
    """Each committed reference holds exactly the methods and protocols its preset sweeps."""
    root = Path(__file__).resolve().parent.parent
    ref = pd.read_csv(root / "results" / "reference" / f"{study}.csv")
    assert {"dataset", "protocol", "method", "metric", "mean"} <= set(ref.columns)
    cfg = composed_preset(study)
    params = cfg.hydra.sweeper.params
    assert set(ref["method"]) == _swept_method_names(params)
    protocols = str(params.protocol).split(",") if "protocol" in params else [cfg.protocol.name]
    assert set(ref["protocol"]) == set(protocols)
    assert cfg.study == study


def test_runs_at_another_thread_count_than_the_preset_pins_are_noted(results, tmp_path, capsys):
    """The reference was made at the preset's thread count; runs at another count (threads=1 on a busy machine)
    move as a seed does, and the check says so beside its verdict."""
    from benchmarks.records import RECORD_NAME, SCHEMA_VERSION, write_json_atomic
    from benchmarks.regress import thread_note

    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "s.yaml").write_text("threads: 2\n")
    for seed, threads in enumerate([2, 1, 1]):
        write_json_atomic(results / "runs" / "s" / f"seed{seed}" / RECORD_NAME,
                          {"schema_version": SCHEMA_VERSION, "status": "ok", "threads": threads})
    assert thread_note(results, "s", presets) == (
        "note: 2 of 3 runs of s used threads=1, but its reference was made at threads=2 (s.yaml pins it), and the "
        "thread count moves trained nets' numbers as a seed does; re-run at threads=2 to compare like with like")
    (presets / "s.yaml").write_text("threads: 1\n")
    assert thread_note(results, "s", presets).startswith("note: 1 of 3 runs of s used threads=2")
    (presets / "s.yaml").write_text("study: s\n")  # a preset that pins no count: nothing to compare
    assert thread_note(results, "s", presets) is None
    assert thread_note(results, "no_such_preset", presets) is None
